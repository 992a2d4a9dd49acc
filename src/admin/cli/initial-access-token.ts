import { parseArgs } from 'node:util';
import { print, required, UsageError, type CommandGroup } from './command.ts';
import { withCore } from './core.ts';

const USAGE = `  initial-access-token <tenant> [--ttl <seconds>]
      Issues an RFC 7591 initial access token for a tenant whose registration.mode is
      "initial-access-token", and prints it. Default lifetime: 86400 s.`;

/** `castellan initial-access-token`: lets one client register itself (RFC 7591 §3.1). */
export const initialAccessTokenCommand: CommandGroup = {
  name: 'initial-access-token',
  usage: USAGE,
  async run(args) {
    const { positionals, values } = parseArgs({ args, allowPositionals: true, strict: true, options: { ttl: { type: 'string' } } });
    const tenant = required(positionals[0], '<tenant>');
    const ttl = values.ttl === undefined ? 86_400 : Number(values.ttl);
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 365 * 86_400) {
      throw new UsageError('--ttl must be a whole number of seconds from 60 to 31536000');
    }
    return withCore(async (core) => {
      const runtime = await core.tenants.get(tenant);
      if (runtime.settings.registration.mode !== 'initial-access-token') {
        process.stderr.write(`tenant "${tenant}" does not use initial access tokens (registration.mode is "${runtime.settings.registration.mode}")\n`);
        return 2;
      }
      const token = new runtime.provider.InitialAccessToken({ expiresIn: ttl });
      print(await token.save());
      return 0;
    });
  },
};
