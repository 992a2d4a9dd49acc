import { parseArgs } from 'node:util';
import { createClientAdmin } from '../services/clients.ts';
import { cliActor, note, print, required, UsageError, type CommandGroup } from './command.ts';
import { withCore } from './core.ts';

const USAGE = `  client create <tenant> [--name <name>] [--redirect-uri <uri>]... [--grant <grant>]...
                [--scope "<scopes>"] [--id <client_id>] [--confidential]
      Registers a client. Grants: authorization_code (the default with a redirect URI),
      refresh_token, client_credentials (the default without one; needs --confidential),
      device_code, token_exchange. --confidential gives it a secret (client_secret_basic),
      printed once: only a digest is stored. Prints client_id (and client_secret).`;

/** Short names operators type for the grant type URIs. */
const GRANTS: Record<string, string> = {
  authorization_code: 'authorization_code',
  refresh_token: 'refresh_token',
  client_credentials: 'client_credentials',
  device_code: 'urn:ietf:params:oauth:grant-type:device_code',
  token_exchange: 'urn:ietf:params:oauth:grant-type:token-exchange',
};

function grantTypes(requested: readonly string[], hasRedirect: boolean): string[] {
  if (requested.length === 0) return hasRedirect ? ['authorization_code', 'refresh_token'] : ['client_credentials'];
  return requested.map((g) => {
    const known = GRANTS[g] ?? Object.values(GRANTS).find((uri) => uri === g);
    if (known === undefined) throw new UsageError(`unknown --grant "${g}" (one of ${Object.keys(GRANTS).join(', ')})`);
    return known;
  });
}

/** `castellan client ...`: clients through the client admin service (src/admin/services/clients.ts). */
export const clientCommands: CommandGroup = {
  name: 'client',
  usage: USAGE,
  async run(args) {
    const { positionals, values } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        name: { type: 'string' },
        'redirect-uri': { type: 'string', multiple: true },
        grant: { type: 'string', multiple: true },
        scope: { type: 'string' },
        id: { type: 'string' },
        confidential: { type: 'boolean' },
      },
    });
    const [verb, tenantArg] = positionals;
    if (verb !== 'create') throw new UsageError(verb === undefined ? 'missing client command (create)' : `unknown client command "${verb}"`);
    const tenant = required(tenantArg, '<tenant>');
    const redirectUris = values['redirect-uri'] ?? [];
    const grants = grantTypes(values.grant ?? [], redirectUris.length > 0);
    const confidential = values.confidential === true;
    if (grants.includes('client_credentials') && !confidential) throw new UsageError('client_credentials needs --confidential (a client that can keep a secret)');
    const metadata: Record<string, unknown> = {
      ...(values.id === undefined ? {} : { client_id: values.id }),
      ...(values.name === undefined ? {} : { client_name: values.name }),
      ...(values.scope === undefined ? {} : { scope: values.scope }),
      redirect_uris: redirectUris,
      grant_types: grants,
      response_types: grants.includes('authorization_code') ? ['code'] : [],
      token_endpoint_auth_method: confidential ? 'client_secret_basic' : 'none',
    };
    return withCore(async (core) => {
      const { client, clientSecret } = await createClientAdmin(core).create(tenant, metadata, cliActor());
      print(`client_id: ${client.client_id}`);
      if (clientSecret !== undefined) {
        print(`client_secret: ${clientSecret}`);
        note('The secret is shown this once (only its digest is stored): keep it now.');
      }
      return 0;
    });
  },
};
