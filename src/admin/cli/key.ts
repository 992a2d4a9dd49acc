import { parseArgs } from 'node:util';
import { SIGNING_ALGS, type SigningAlg } from '../../keys/signing-key-store.ts';
import { createKeyAdmin, type KeyAdmin } from '../services/keys.ts';
import type { CastellanCore } from '../../server.ts';
import { cliActor, print, required, UsageError, type CommandGroup } from './command.ts';
import { withCore } from './core.ts';

const USAGE = `  key list <tenant>
      The tenant's signing keys: kid, alg, state (next, active, retired, removed) and dates.
  key rotate <tenant> [--alg RS256|ES256|EdDSA]
      A new key signs from now on (every alg of the tenant, or --alg); the old one is
      retired: still published until the tokens it signed have expired. Other nodes switch
      within about 10 s.
  key retire <tenant> <kid>
      Emergency: withdraws a compromised key at once. It is no longer published, so tokens
      it signed stop verifying; an active key is first replaced by a new one.`;

function keyAdmin(core: CastellanCore): KeyAdmin {
  return createKeyAdmin(core);
}

function parseAlg(value: string | undefined): SigningAlg | undefined {
  if (value === undefined) return undefined;
  if (!(SIGNING_ALGS as readonly string[]).includes(value)) throw new UsageError(`--alg must be one of ${SIGNING_ALGS.join(', ')}`);
  return value as SigningAlg;
}

/** `castellan key ...`: signing keys through the key admin service (src/admin/services/keys.ts). */
export const keyCommands: CommandGroup = {
  name: 'key',
  usage: USAGE,
  async run(args) {
    const { positionals, values } = parseArgs({ args, allowPositionals: true, strict: true, options: { alg: { type: 'string' } } });
    const [verb, tenantArg, kidArg] = positionals;
    if (verb === 'list') {
      const tenant = required(tenantArg, '<tenant>');
      return withCore(async (core) => {
        const keys = await keyAdmin(core).list(tenant);
        print(['kid', 'alg', 'state', 'created', 'activated', 'remove_at'].join('\t'));
        for (const k of keys) print([k.kid, k.alg, k.state, k.createdAt, k.activatedAt ?? '-', k.removeAt ?? '-'].join('\t'));
        return 0;
      });
    }
    if (verb === 'rotate') {
      const tenant = required(tenantArg, '<tenant>');
      const alg = parseAlg(values.alg);
      return withCore(async (core) => {
        const rotated = await keyAdmin(core).rotate(tenant, { ...(alg === undefined ? {} : { alg }), actor: cliActor() });
        for (const r of rotated) print(`${r.alg}\t${r.kid}\t(was ${r.previousKid ?? 'none'})`);
        return 0;
      });
    }
    if (verb === 'retire') {
      const tenant = required(tenantArg, '<tenant>');
      const kid = required(kidArg, '<kid>');
      return withCore(async (core) => {
        const retired = await keyAdmin(core).retire(tenant, kid, { actor: cliActor() });
        print(`${retired.alg}\t${retired.kid}\tretired (was ${retired.previousState})${retired.replacement ? `; ${retired.replacement.kid} signs now` : ''}`);
        return 0;
      });
    }
    throw new UsageError(verb === undefined ? 'missing key command (list, rotate or retire)' : `unknown key command "${verb}"`);
  },
};
