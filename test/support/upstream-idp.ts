import { randomBytes } from 'node:crypto';
import type { TestCastellan } from './castellan.ts';

/** The tenant that plays the upstream IdP in the "Sign in with ..." tests. */
export const UPSTREAM_TENANT = 'upstream';

/**
 * Makes a tenant of the same Castellan the upstream IdP of its demo tenant: tenant
 * `upstream` ("Partner IdP") with a confidential client `clientId` (client_secret_basic)
 * whose redirect_uri is the demo tenant's upstream callback. The client secret is put in
 * `process.env[secretEnv]`, where the demo tenant's upstreamIdps entry reads it. Returns the
 * upstream issuer, and whether the tenant was new.
 */
export async function createUpstreamIdp(castellan: TestCastellan, clientId: string, secretEnv: string): Promise<{ issuer: string; created: boolean }> {
  const { storage } = castellan.running;
  const secret = randomBytes(24).toString('base64url');
  process.env[secretEnv] = secret;
  const created = await storage.tenants.create({ id: UPSTREAM_TENANT, displayName: 'Partner IdP', settings: { displayName: 'Partner IdP' } });
  await storage.modelStores(UPSTREAM_TENANT).durable.upsert('Client', clientId, {
    client_id: clientId,
    client_secret: secret,
    client_name: 'Castellan demo',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${castellan.issuer}/upstream/callback`],
    token_endpoint_auth_method: 'client_secret_basic',
  });
  return { issuer: `${castellan.baseUrl}/t/${UPSTREAM_TENANT}`, created };
}
