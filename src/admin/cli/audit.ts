import { parseArgs } from 'node:util';
import { verifyAuditEvents } from '../../observability/audit-chain.ts';
import { print, required, UsageError, type CommandGroup } from './command.ts';
import { withCore } from './core.ts';

const USAGE = `  audit verify <tenant> [--head <hash>]
      Walks the tenant's hash-chained audit log (links of one or more events) and prints
      "ok: N events in M links, head <hash>", or the first edited, deleted or misplaced
      link (exit code 1). Keep the printed head
      somewhere else: deleting the newest events is only detectable against it, by passing
      it back as --head (the chain must still contain it).`;

/** `castellan audit verify`: the tamper check of src/observability/audit-chain.ts. */
export const auditCommands: CommandGroup = {
  name: 'audit',
  usage: USAGE,
  async run(args) {
    const { positionals, values } = parseArgs({ args, allowPositionals: true, strict: true, options: { head: { type: 'string' } } });
    const [verb, tenantArg] = positionals;
    if (verb !== 'verify') throw new UsageError(verb === undefined ? 'missing audit command (verify)' : `unknown audit command "${verb}"`);
    const tenant = required(tenantArg, '<tenant>');
    const anchor = values.head;
    if (anchor !== undefined && !/^[0-9a-f]{64}$/.test(anchor)) {
      throw new UsageError('--head must be a head hash printed by an earlier verify (64 hex digits)');
    }
    return withCore(async (core) => {
      if (!core.auditEvents) return 2;
      if (!(await core.storage.tenants.get(tenant))) {
        process.stderr.write(`unknown tenant "${tenant}"\n`);
        return 2;
      }
      const result = await verifyAuditEvents(core.auditEvents, tenant, anchor === undefined ? {} : { anchor });
      if (result.ok) {
        print(`ok: ${result.count} events in ${result.links} links, head ${result.head}`);
        return 0;
      }
      print(`broken at seq ${result.seq} (${result.problem}): ${result.detail}; ${result.count} events in ${result.links} links verified before it`);
      return 1;
    });
  },
};
