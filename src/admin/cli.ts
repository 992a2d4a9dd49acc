import { parseArgs } from 'node:util';
import { loadSettings, SettingsError, type Settings } from '../config/settings.ts';
import { totpEvent } from '../observability/audit.ts';
import { verifyAuditEvents } from '../observability/audit-chain.ts';
import { createLogger } from '../observability/logger.ts';
import { openCore, type CastellanCore } from '../server.ts';

const USAGE = `usage: npm run castellan -- <command>

commands:
  initial-access-token <tenant> [--ttl <seconds>]
      Issues an RFC 7591 initial access token for a tenant whose registration.mode is
      "initial-access-token", and prints it. Default lifetime: 86400 s.
  user create <tenant> <login> [--email <address>] [--name <full name>]
      Creates a user who signs in with a password (hashed with argon2id). The password is
      read from standard input (first line), never from the command line.
  user totp-reset <tenant> <login>
      Removes the user's two-step verification (TOTP) and its recovery codes, e.g. after
      a lost phone. The next sign-in asks for the password only, or, where the tenant
      requires TOTP, sets it up again.
  audit verify <tenant> [--head <hash>]
      Walks the tenant's hash-chained audit events and prints "ok: N events, head <hash>",
      or the first edited, deleted or misplaced event (exit code 1). Keep the printed head
      somewhere else: deleting the newest events is only detectable against it, by passing
      it back as --head (the chain must still contain it).

Settings come from the same environment as the server (MONGODB_URL, REDIS_URL,
CASTELLAN_KEY_ENCRYPTION_KEY, ...): the CLI must use the server's stores.`;

/** The operator's command line; the admin API (a later step) will offer the same operations. */
async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ttl: { type: 'string' },
      email: { type: 'string' },
      name: { type: 'string' },
      head: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, tenant] = positionals;
  if (!values.help && command === 'user' && positionals[1] === 'create' && positionals[2] && positionals[3]) {
    return createUser(positionals[2], positionals[3], { email: values.email, name: values.name });
  }
  if (!values.help && command === 'user' && positionals[1] === 'totp-reset' && positionals[2] && positionals[3]) {
    return resetTotp(positionals[2], positionals[3]);
  }
  if (!values.help && command === 'audit' && positionals[1] === 'verify' && positionals[2]) {
    return verifyAudit(positionals[2], values.head);
  }
  if (values.help || command !== 'initial-access-token' || !tenant) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const ttl = values.ttl === undefined ? 86_400 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl < 60 || ttl > 365 * 86_400) {
    process.stderr.write('--ttl must be a whole number of seconds from 60 to 31536000\n');
    return 2;
  }
  const settings = sharedStoreSettings();
  if (!settings) return 2;
  return withCore(settings, async (core) => {
    const runtime = await core.tenants.get(tenant);
    if (runtime.settings.registration.mode !== 'initial-access-token') {
      process.stderr.write(`tenant "${tenant}" does not use initial access tokens (registration.mode is "${runtime.settings.registration.mode}")\n`);
      return 2;
    }
    const token = new runtime.provider.InitialAccessToken({ expiresIn: ttl });
    process.stdout.write(`${await token.save()}\n`);
    return 0;
  });
}

/**
 * The server's settings, or undefined (said on stderr) when they name the in-memory store:
 * the CLI must change the stores a running server uses.
 */
function sharedStoreSettings(): Settings | undefined {
  const settings = loadSettings();
  if (settings.storage !== 'memory') return settings;
  process.stderr.write('no MONGODB_URL: an in-memory store cannot be shared with a running server\n');
  return undefined;
}

/** Opens the server's stores, runs one command against them and closes them again; the command's exit code. */
async function withCore(settings: Settings, command: (core: CastellanCore) => Promise<number>): Promise<number> {
  const core = await openCore(settings, createLogger('warn'));
  try {
    return await command(core);
  } finally {
    await core.close();
  }
}

/** The first line of standard input: how a password reaches the CLI without showing in `ps`. */
async function readPasswordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (Buffer.concat(chunks).includes(0x0a)) break;
  }
  return (Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '');
}

async function createUser(tenant: string, login: string, claims: { email: string | undefined; name: string | undefined }): Promise<number> {
  const settings = sharedStoreSettings();
  if (!settings) return 2;
  const password = await readPasswordFromStdin();
  return withCore(settings, async (core) => {
    if (!(await core.storage.tenants.get(tenant))) {
      process.stderr.write(`unknown tenant "${tenant}"\n`);
      return 2;
    }
    const user = await core.storage.users.create({
      tenant,
      login,
      password,
      claims: { ...(claims.email ? { email: claims.email, email_verified: false } : {}), ...(claims.name ? { name: claims.name } : {}) },
    });
    process.stdout.write(`${user.id}\n`);
    return 0;
  });
}

async function resetTotp(tenant: string, login: string): Promise<number> {
  const settings = sharedStoreSettings();
  if (!settings) return 2;
  return withCore(settings, async (core) => {
    const user = await core.storage.users.findByLogin(tenant, login);
    if (!user) {
      process.stderr.write(`no user "${login}" in tenant "${tenant}"\n`);
      return 2;
    }
    if (!user.totp) {
      process.stdout.write(`${user.id}: no two-step verification to remove\n`);
      return 0;
    }
    await core.totp.disable(tenant, user.id);
    await core.audit.record(totpEvent(tenant, user.id, 'totp_reset', 'operator'));
    process.stdout.write(`${user.id}: two-step verification removed\n`);
    return 0;
  });
}

async function verifyAudit(tenant: string, anchor: string | undefined): Promise<number> {
  if (anchor !== undefined && !/^[0-9a-f]{64}$/.test(anchor)) {
    process.stderr.write('--head must be a head hash printed by an earlier verify (64 hex digits)\n');
    return 2;
  }
  const settings = sharedStoreSettings();
  if (!settings) return 2;
  return withCore(settings, async (core) => {
    if (!core.auditEvents) return 2;
    if (!(await core.storage.tenants.get(tenant))) {
      process.stderr.write(`unknown tenant "${tenant}"\n`);
      return 2;
    }
    const result = await verifyAuditEvents(core.auditEvents, tenant, anchor === undefined ? {} : { anchor });
    if (result.ok) {
      process.stdout.write(`ok: ${result.count} events, head ${result.head}\n`);
      return 0;
    }
    process.stdout.write(`broken at seq ${result.seq} (${result.problem}): ${result.detail}; ${result.count} events verified before it\n`);
    return 1;
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof SettingsError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`castellan: ${message}\n`);
    process.exit(1);
  },
);
