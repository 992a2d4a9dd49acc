import { auditCommands } from './cli/audit.ts';
import { clientCommands } from './cli/client.ts';
import { UsageError, type CommandGroup } from './cli/command.ts';
import { initCommand } from './cli/init.ts';
import { initialAccessTokenCommand } from './cli/initial-access-token.ts';
import { keyCommands } from './cli/key.ts';
import { serveCommand } from './cli/serve.ts';
import { tenantCommands } from './cli/tenant.ts';
import { userCommands } from './cli/user.ts';

/**
 * The operator's command line: `castellan <group> ...` (bin/castellan.mjs, or
 * `npm run castellan -- ...`). Each verb group is a module of src/admin/cli/ over the same
 * admin services as the admin API (src/admin/services/), so both change the stores alike
 * and record the same audit events (actor: the OS user).
 */
const GROUPS: readonly CommandGroup[] = [
  initCommand, tenantCommands, clientCommands, userCommands, keyCommands, initialAccessTokenCommand, auditCommands, serveCommand,
];

const USAGE = `usage: castellan <command>   (or: npm run castellan -- <command>)

commands:
${GROUPS.map((g) => g.usage).join('\n')}

Settings come from the same environment as the server (MONGODB_URL, REDIS_URL,
CASTELLAN_KEY_ENCRYPTION_KEY, ...): the CLI must use the server's stores. Results go to
standard output; notes, errors and audit log lines to standard error.`;

/** The exit code: 0 done, 1 refused or failed, 2 bad usage; 'serving' keeps the process. */
async function main(argv: string[]): Promise<number | 'serving'> {
  const [name, ...rest] = argv;
  const group = GROUPS.find((g) => g.name === name);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help' || !group || rest.includes('--help') || rest.includes('-h')) {
    process.stderr.write(`${USAGE}\n`);
    return group || name === '--help' || name === '-h' || name === 'help' ? 0 : 2;
  }
  try {
    return await group.run(rest);
  } catch (err) {
    // parseArgs refuses unknown options and missing values with ERR_PARSE_ARGS_* codes.
    const code = (err as { code?: unknown }).code;
    if (err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`castellan ${name}: ${(err as Error).message}\n\n${group.usage}\n`);
      return 2;
    }
    throw err;
  }
}

/** One line, never a stack: oidc-provider's errors keep their detail in error_description. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const detail = (err as { error_description?: unknown }).error_description;
  return typeof detail === 'string' && detail !== '' && !err.message.includes(detail) ? `${err.message}: ${detail}` : err.message;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 'serving') process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`castellan: ${describe(err)}\n`);
    process.exit(1);
  },
);
