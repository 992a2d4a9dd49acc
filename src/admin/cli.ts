import { parseArgs } from 'node:util';
import { loadSettings, SettingsError } from '../config/settings.ts';
import { createLogger } from '../observability/logger.ts';
import { openCore } from '../server.ts';

const USAGE = `usage: npm run castellan -- <command>

commands:
  initial-access-token <tenant> [--ttl <seconds>]
      Issues an RFC 7591 initial access token for a tenant whose registration.mode is
      "initial-access-token", and prints it. Default lifetime: 86400 s.

Settings come from the same environment as the server (MONGODB_URL, REDIS_URL,
CASTELLAN_KEY_ENCRYPTION_KEY, ...): the CLI must use the server's stores.`;

/** The operator's command line; the admin API (a later step) will offer the same operations. */
async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ttl: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [command, tenant] = positionals;
  if (values.help || command !== 'initial-access-token' || !tenant) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const ttl = values.ttl === undefined ? 86_400 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl < 60 || ttl > 365 * 86_400) {
    process.stderr.write('--ttl must be a whole number of seconds from 60 to 31536000\n');
    return 2;
  }
  const settings = loadSettings();
  if (settings.storage === 'memory') {
    process.stderr.write('no MONGODB_URL: an in-memory store cannot be shared with a running server\n');
    return 2;
  }
  const core = await openCore(settings, createLogger('warn'));
  try {
    const runtime = await core.tenants.get(tenant);
    if (runtime.settings.registration.mode !== 'initial-access-token') {
      process.stderr.write(`tenant "${tenant}" does not use initial access tokens (registration.mode is "${runtime.settings.registration.mode}")\n`);
      return 2;
    }
    const token = new runtime.provider.InitialAccessToken({ expiresIn: ttl });
    process.stdout.write(`${await token.save()}\n`);
    return 0;
  } finally {
    await core.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof SettingsError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`castellan: ${message}\n`);
    process.exit(1);
  },
);
