import { parseArgs } from 'node:util';
import { totpEvent } from '../../observability/audit.ts';
import { createUserAdmin } from '../services/users.ts';
import { cliActor, print, required, UsageError, type CommandGroup } from './command.ts';
import { readFirstLineOfStdin, sharedStoreSettings, withCore } from './core.ts';

const USAGE = `  user create <tenant> <login> [--email <address>] [--name <full name>]
      Creates a user who signs in with a password (hashed with argon2id). The password is
      read from standard input (first line), never from the command line. Prints the user id.
  user totp-reset <tenant> <login>
      Removes the user's two-step verification (TOTP) and its recovery codes, e.g. after
      a lost phone. The next sign-in asks for the password only, or, where the tenant
      requires TOTP, sets it up again.`;

/** `castellan user ...`: users through the user admin service (src/admin/services/users.ts). */
export const userCommands: CommandGroup = {
  name: 'user',
  usage: USAGE,
  async run(args) {
    const { positionals, values } = parseArgs({
      args, allowPositionals: true, strict: true, options: { email: { type: 'string' }, name: { type: 'string' } },
    });
    const [verb, tenantArg, loginArg] = positionals;
    if (verb === 'create') {
      const tenant = required(tenantArg, '<tenant>');
      const login = required(loginArg, '<login>');
      if (!sharedStoreSettings()) return 2;
      const password = await readFirstLineOfStdin();
      return withCore(async (core) => {
        const input = { login, password, ...(values.email === undefined ? {} : { email: values.email }), ...(values.name === undefined ? {} : { name: values.name }) };
        const user = await createUserAdmin(core).create(tenant, input, cliActor());
        print(user.id);
        return 0;
      });
    }
    if (verb === 'totp-reset') {
      const tenant = required(tenantArg, '<tenant>');
      const login = required(loginArg, '<login>');
      return withCore(async (core) => {
        const user = await core.storage.users.findByLogin(tenant, login);
        if (!user) {
          process.stderr.write(`no user "${login}" in tenant "${tenant}"\n`);
          return 2;
        }
        if (!user.totp) {
          print(`${user.id}: no two-step verification to remove`);
          return 0;
        }
        await core.totp.disable(tenant, user.id);
        await core.audit.record(totpEvent(tenant, user.id, 'totp_reset', 'operator'));
        print(`${user.id}: two-step verification removed`);
        return 0;
      });
    }
    throw new UsageError(verb === undefined ? 'missing user command (create or totp-reset)' : `unknown user command "${verb}"`);
  },
};
