import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenantFetch } from '../../src/registration/cimd/cimd-feature.ts';
import { GuardedFetchError } from '../../src/registration/cimd/guarded-fetch.ts';
import { clientIdMetadataDocumentSchema } from '../../src/tenants/tenant-settings.ts';
import { makeTestPki } from '../registration/fixtures/cimd-document-server.ts';

/*
 * DNS rebinding between check and connect (MCP Security Best Practices "Server-Side Request
 * Forgery (SSRF)"; CIMD draft Security Considerations): the attacker's name answers an
 * allowed address when the server checks it and an inside address when the server connects.
 * The guarded fetch (src/registration/cimd/guarded-fetch.ts, through createTenantFetch: the
 * fetch every tenant's provider uses) must resolve once and connect only to the address it
 * checked.
 *
 * Off the network, "public" is played by 127.0.0.3, which the tenant's privateNetworkAllowlist
 * admits (so the production address policy allows it exactly as it allows a public address),
 * and "inside" by 127.0.0.1, refused as loopback. Both listen on the same port, so the port in
 * the URL reaches whichever address the connection is made to; each counts its connections.
 */
const NAME = 'rebind.cimd.test';
const ALLOWED = '127.0.0.3';
const INSIDE = '127.0.0.1';

describe('DNS rebinding between check and connect', () => {
  let allowedServer: HttpsServer;
  let insideServer: NetServer;
  let port = 0;
  let allowedRequests = 0;
  let insideConnections = 0;
  let ca = '';

  beforeAll(async () => {
    const pki = makeTestPki('Castellan DNS rebinding test CA');
    ca = pki.caCert;
    allowedServer = createHttpsServer({ key: pki.key, cert: pki.cert }, (_req, res) => {
      allowedRequests += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [] }));
    });
    // Both servers on one port number: retry until the port is free on both addresses.
    for (let attempt = 0; attempt < 20 && port === 0; attempt += 1) {
      await new Promise<void>((resolve, reject) => allowedServer.once('error', reject).listen(0, ALLOWED, () => resolve()));
      const candidate = (allowedServer.address() as { port: number }).port;
      const inside = createNetServer((socket) => {
        insideConnections += 1;
        socket.destroy();
      });
      const bound = await new Promise<boolean>((resolve) => {
        inside.once('error', () => resolve(false)).listen(candidate, INSIDE, () => resolve(true));
      });
      if (bound) {
        insideServer = inside;
        port = candidate;
      } else {
        await new Promise<void>((resolve) => allowedServer.close(() => resolve()));
      }
    }
    expect(port).not.toBe(0);
  });
  afterAll(async () => {
    allowedServer?.closeAllConnections();
    await new Promise<void>((resolve) => allowedServer?.close(() => resolve()));
    await new Promise<void>((resolve) => insideServer?.close(() => resolve()));
  });

  /** A resolver that answers `first` once, then `later` for ever, and counts its lookups. */
  function rebindingResolver(first: string, later: string) {
    const calls: string[] = [];
    const lookup = async (hostname: string): Promise<readonly string[]> => {
      calls.push(hostname);
      return [calls.length === 1 ? first : later];
    };
    return { lookup, calls };
  }

  function tenantFetch(lookup: (hostname: string) => Promise<readonly string[]>) {
    return createTenantFetch({
      tenantId: 'acme',
      settings: clientIdMetadataDocumentSchema.parse({ enabled: true, privateNetworkAllowlist: [ALLOWED] }),
      allowedScopes: [],
      ca,
      lookup,
      timeoutMs: 2000,
    });
  }

  const url = () => `https://${NAME}:${port}/jwks.json`;

  it('checks the allowed first answer and connects to it, never to the inside address of a later lookup', async () => {
    const before = allowedRequests;
    const { lookup, calls } = rebindingResolver(ALLOWED, INSIDE);
    const fetch = tenantFetch(lookup);
    const response = await fetch(url(), { headers: { accept: 'application/json' } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ keys: [] });
    expect(allowedRequests).toBe(before + 1);
    expect(calls).toEqual([NAME]);
    // A second fetch resolves again and now gets the inside address: refused before connecting.
    const error = await fetch(url()).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(GuardedFetchError);
    expect((error as GuardedFetchError).code).toBe('ADDRESS_REFUSED');
    expect(calls).toEqual([NAME, NAME]);
    expect(insideConnections).toBe(0);
  });

  it('refuses an inside first answer without connecting anywhere, whatever a later lookup would say', async () => {
    const before = allowedRequests;
    const { lookup, calls } = rebindingResolver(INSIDE, ALLOWED);
    const error = await tenantFetch(lookup)(url()).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(GuardedFetchError);
    expect((error as GuardedFetchError).code).toBe('ADDRESS_REFUSED');
    expect(calls).toEqual([NAME]);
    expect(allowedRequests).toBe(before);
    expect(insideConnections).toBe(0);
  });

  it('never reaches the inside address over 20 fetches from a resolver that alternates on every lookup', async () => {
    let lookups = 0;
    const lookup = async (): Promise<readonly string[]> => {
      lookups += 1;
      return [lookups % 2 === 1 ? ALLOWED : INSIDE];
    };
    const fetch = tenantFetch(lookup);
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i += 1) {
      outcomes.push(await fetch(url()).then((r) => String(r.status), (e: unknown) => (e instanceof GuardedFetchError ? e.code : String(e))));
    }
    // One lookup per fetch: what was checked is what was used.
    expect(lookups).toBe(20);
    expect(outcomes).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? '200' : 'ADDRESS_REFUSED')));
    expect(insideConnections).toBe(0);
  });
});
