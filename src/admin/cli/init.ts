import { ConflictError } from '../../errors/errors.ts';
import { ADMIN_SCOPES, adminResourceUri, createAdminClient, ensureSystemTenant } from '../services/system-tenant.ts';
import { cliActor, note, print, UsageError, type CommandGroup } from './command.ts';
import { withCore } from './core.ts';

/** The first admin client, made by init. */
export const ADMIN_CLIENT_ID = 'castellan-admin';

const USAGE = `  init
      Creates the system tenant (CASTELLAN_SYSTEM_TENANT, default "system") whose tokens
      the admin API accepts, and its first admin client (client_credentials, scopes
      ${ADMIN_SCOPES.join(' ')}); prints the client's id and secret once. Run again, it says
      so and prints no secret.`;

/** `castellan init`: what an operator runs once against new stores. */
export const initCommand: CommandGroup = {
  name: 'init',
  usage: USAGE,
  async run(args) {
    if (args.length > 0) throw new UsageError('init takes no arguments');
    return withCore(async (core, settings) => {
      const actor = cliActor();
      const tenantId = settings.systemTenant;
      // Servers with the admin API on create the tenant at start-up; init makes sure of it.
      await ensureSystemTenant(core, { tenantId, baseUrl: settings.baseUrl }, actor);
      const issuer = core.tenants.issuerFor(tenantId);
      const resource = adminResourceUri(settings.baseUrl);
      // Checked rather than assumed: an earlier init may have stopped between the two steps.
      if ((await core.storage.modelStores(tenantId).durable.find('Client', ADMIN_CLIENT_ID)) === undefined) {
        try {
          const { client, clientSecret } = await createAdminClient(core, { tenantId, clientId: ADMIN_CLIENT_ID, clientName: 'Castellan admin (castellan init)' }, actor);
          print(`issuer: ${issuer}`);
          print(`token endpoint: ${issuer}/token`);
          print(`resource: ${resource}`);
          print(`client_id: ${client.client_id}`);
          print(`client_secret: ${clientSecret ?? ''}`);
          note('The secret is shown this once (only its digest is stored): keep it now. An admin token:');
          note(`  curl -u ${client.client_id}:<secret> -d grant_type=client_credentials -d resource=${resource} -d "scope=${ADMIN_SCOPES.join(' ')}" ${issuer}/token`);
          return 0;
        } catch (err) {
          // Another init made it at the same moment: that one printed the secret.
          if (!(err instanceof ConflictError)) throw err;
        }
      }
      print(`already initialised: tenant "${tenantId}" and its admin client "${ADMIN_CLIENT_ID}" exist (no secret printed).`);
      note(`Another admin client: castellan client create ${tenantId} --confidential --grant client_credentials --scope "${ADMIN_SCOPES.join(' ')}"`);
      return 0;
    });
  },
};
