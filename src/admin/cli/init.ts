import { ConflictError } from '../../errors/errors.ts';
import { createClientAdmin } from '../services/clients.ts';
import { createTenantAdmin } from '../services/tenants.ts';
import { cliActor, note, print, UsageError, type CommandGroup } from './command.ts';
import { withCore } from './core.ts';

/** The tenant whose tokens the admin API accepts (Castellan protecting itself), and its scopes. */
export const SYSTEM_TENANT = 'system';
export const ADMIN_SCOPES = ['admin:read', 'admin:write'] as const;
/** The first admin client, made by init. */
export const ADMIN_CLIENT_ID = 'castellan-admin';

const USAGE = `  init
      Creates the "${SYSTEM_TENANT}" tenant that protects the admin API and its first admin
      client (client_credentials, scopes ${ADMIN_SCOPES.join(' ')}), and prints the client's
      id and secret once. Run again, it says so and prints no secret.`;

/** `castellan init`: what an operator runs once against new stores. */
export const initCommand: CommandGroup = {
  name: 'init',
  usage: USAGE,
  async run(args) {
    if (args.length > 0) throw new UsageError('init takes no arguments');
    return withCore(async (core) => {
      const actor = cliActor();
      const tenants = createTenantAdmin(core);
      const clients = createClientAdmin(core);
      if (!(await core.storage.tenants.get(SYSTEM_TENANT))) {
        try {
          await tenants.create({
            id: SYSTEM_TENANT,
            displayName: 'Castellan administration',
            // Only operators' clients, made here or by `client create`: no self-registration.
            settings: { scopes: [...ADMIN_SCOPES], registration: { mode: 'closed' } },
          }, actor);
        } catch (err) {
          // Another init won the race: it makes (and prints) the client.
          if (!(err instanceof ConflictError)) throw err;
        }
      }
      // The tenant may exist without the client when an earlier init stopped half-way.
      if ((await core.storage.modelStores(SYSTEM_TENANT).durable.find('Client', ADMIN_CLIENT_ID)) === undefined) {
        try {
          const { client, clientSecret } = await clients.create(SYSTEM_TENANT, {
            client_id: ADMIN_CLIENT_ID,
            client_name: 'Castellan admin (made by castellan init)',
            grant_types: ['client_credentials'],
            response_types: [],
            redirect_uris: [],
            token_endpoint_auth_method: 'client_secret_basic',
            scope: ADMIN_SCOPES.join(' '),
          }, actor);
          const issuer = core.tenants.issuerFor(SYSTEM_TENANT);
          print(`issuer: ${issuer}`);
          print(`token endpoint: ${issuer}/token`);
          print(`client_id: ${client.client_id}`);
          print(`client_secret: ${clientSecret ?? ''}`);
          note('The secret is shown this once (only its digest is stored): keep it now.');
          return 0;
        } catch (err) {
          if (!(err instanceof ConflictError)) throw err;
        }
      }
      print(`already initialised: tenant "${SYSTEM_TENANT}" and its admin client "${ADMIN_CLIENT_ID}" exist (no secret printed).`);
      note(`Another admin client: castellan client create ${SYSTEM_TENANT} --confidential --grant client_credentials --scope "${ADMIN_SCOPES.join(' ')}"`);
      return 0;
    });
  },
};
