import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidTokenError, VerifierUnavailableError } from '../../src/resource-server/index.ts';
import type { TestCastellan } from '../support/castellan.ts';
import { basicAuth, postToken } from '../support/oauth.ts';

export const MCP_RESOURCE = 'http://localhost:3001/mcp';
export const OPAQUE_RESOURCE = 'http://localhost:3002/api';

/** A fetch that counts its calls per URL, to see how often a verifier goes to the AS. */
export function countingFetch(): { fetch: typeof fetch; calls: (url?: string) => number } {
  const counts = new Map<string, number>();
  return {
    fetch: (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      counts.set(url, (counts.get(url) ?? 0) + 1);
      return fetch(input, init);
    },
    calls: (url) => (url === undefined ? [...counts.values()].reduce((a, b) => a + b, 0) : counts.get(url) ?? 0),
  };
}

/** A client_credentials token of demo-service, failing loudly when the AS says no. */
export async function serviceToken(castellan: TestCastellan, form: Record<string, string> = {}, issuer = castellan.issuer, secret = castellan.clientSecret, clientId = 'demo-service'): Promise<string> {
  const { status, body } = await postToken(issuer, { grant_type: 'client_credentials', ...form }, basicAuth(clientId, secret));
  if (status !== 200 || typeof body.access_token !== 'string') throw new Error(`token request failed: ${status} ${JSON.stringify(body)}`);
  return body.access_token;
}

export async function revoke(castellan: TestCastellan, token: string): Promise<void> {
  const response = await fetch(`${castellan.issuer}/token/revocation`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('demo-service', castellan.clientSecret) },
    body: new URLSearchParams({ token }).toString(),
  });
  if (response.status !== 200) throw new Error(`revocation failed: ${response.status} ${await response.text()}`);
}

/** Adds resources to the demo tenant (through its stored settings, as an operator would). */
export async function addDemoResources(castellan: TestCastellan, resources: readonly Record<string, unknown>[]): Promise<void> {
  const current = (await castellan.running.storage.tenants.get('demo'))?.settings ?? {};
  const existing = Array.isArray(current.resources) ? (current.resources as unknown[]) : [];
  await castellan.running.storage.tenants.update('demo', { settings: { ...current, resources: [...existing, ...resources] } });
  castellan.running.tenants.invalidate('demo');
}

/**
 * A second tenant `other`, with the same MCP resource URI as demo (so only the issuer and the
 * keys tell its tokens apart) and a confidential client of its own.
 */
export async function createOtherTenant(castellan: TestCastellan): Promise<{ issuer: string; clientId: string; secret: string }> {
  const secret = randomBytes(18).toString('base64url');
  await castellan.running.storage.tenants.create({
    id: 'other',
    displayName: 'Other',
    settings: { scopes: ['notes:read', 'notes:write'], resources: [{ uri: MCP_RESOURCE, scopes: ['notes:read', 'notes:write'] }] },
  });
  await castellan.running.storage.modelStores('other').durable.upsert('Client', 'other-service', {
    client_id: 'other-service',
    client_secret: secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  });
  return { issuer: `${castellan.baseUrl}/t/other`, clientId: 'other-service', secret };
}

/** Starts a node:http server on a free loopback port. */
export async function listen(server: Server): Promise<{ port: number; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A JWKS endpoint on loopback serving whatever keys the test puts in it. */
export async function startJwksServer(): Promise<{ url: string; keys: Array<Record<string, unknown>>; close: () => Promise<void> }> {
  const keys: Array<Record<string, unknown>> = [];
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys }));
  });
  const { port, close } = await listen(server);
  return { url: `http://127.0.0.1:${port}/jwks`, keys, close };
}

/** What a verifier rejected with, for asserting codes; anything but the kit's errors fails the test. */
export async function refusal(promise: Promise<unknown>): Promise<InvalidTokenError | VerifierUnavailableError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof InvalidTokenError || error instanceof VerifierUnavailableError) return error;
    throw error;
  }
  throw new Error('expected the token to be refused');
}
