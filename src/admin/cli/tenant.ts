import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createTenantAdmin } from '../services/tenants.ts';
import { cliActor, print, required, UsageError, type CommandGroup } from './command.ts';
import { withCore } from './core.ts';

const USAGE = `  tenant create <id> [--name <display name>] [--settings-file <tenant-settings.json>]
      Creates a tenant (issuer <base URL>/t/<id>) with the tenant settings in the JSON file
      (defaults otherwise; README "Tenant settings") and elects its signing keys. Prints
      the issuer.
  tenant disable <id> | tenant enable <id>
      A disabled tenant answers like an unknown one everywhere and its tokens stop passing
      introspection. Through the CLI the system tenant can be disabled too (that locks the
      admin API out) and enabled again.`;

/** The JSON object in the file, or a UsageError saying why not. */
async function readSettingsFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--settings-file: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`--settings-file: ${path} is not JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`--settings-file: ${path} must hold one JSON object`);
  return value as Record<string, unknown>;
}

/** `castellan tenant ...`: tenants through the tenant admin service (src/admin/services/tenants.ts). */
export const tenantCommands: CommandGroup = {
  name: 'tenant',
  usage: USAGE,
  async run(args) {
    const { positionals, values } = parseArgs({
      args, allowPositionals: true, strict: true, options: { name: { type: 'string' }, 'settings-file': { type: 'string' } },
    });
    const [verb, idArg] = positionals;
    if (verb === 'enable' || verb === 'disable') {
      const id = required(idArg, '<id>');
      return withCore(async (core) => {
        const admin = createTenantAdmin(core);
        const tenant = verb === 'enable' ? await admin.enable(id, cliActor()) : await admin.disable(id, cliActor());
        print(`${tenant.id}: ${tenant.disabled ? 'disabled' : 'enabled'}`);
        return 0;
      });
    }
    if (verb !== 'create') throw new UsageError(verb === undefined ? 'missing tenant command (create, enable, disable)' : `unknown tenant command "${verb}"`);
    const id = required(idArg, '<id>');
    const settingsFile = values['settings-file'];
    const settings = settingsFile === undefined ? {} : await readSettingsFile(settingsFile);
    return withCore(async (core) => {
      const tenant = await createTenantAdmin(core).create({ id, displayName: values.name ?? id, settings }, cliActor());
      print(core.tenants.issuerFor(tenant.id));
      return 0;
    });
  },
};
