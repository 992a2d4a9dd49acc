import { createServer } from 'node:http';
import { connect } from 'node:net';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createJwtVerifier,
  createNodeBearerAuth,
  createNodeProtectedResourceMetadataHandler,
  koaBearerAuth,
  koaProtectedResourceMetadata,
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  requireScopes,
  type BearerAuthOptions,
  type BearerAuthState,
} from '../../src/resource-server/index.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { freePort } from '../support/running-server.ts';
import { addDemoResources, listen, serviceToken } from './support.ts';

/*
 * The same small MCP-like server built twice, on node:http and on Koa: `/mcp` needs
 * notes:read, `/mcp?tool=write` also notes:write (checked in the "tool", as a tool handler
 * would), `/down` verifies against a JWKS nobody serves. Both are driven with fetch and with
 * raw bytes on a socket, for headers fetch refuses to send.
 */

interface Site {
  resource: string;
  port: number;
  close(): Promise<void>;
}

type SiteFactory = (castellan: TestCastellan, port: number, resource: string) => Promise<Site>;

function authOptions(castellan: TestCastellan, resource: string, jwksUri?: string): BearerAuthOptions {
  return {
    verifier: createJwtVerifier({ issuer: castellan.issuer, audience: resource, ...(jwksUri ? { jwksUri, jwksTimeoutMs: 1000 } : {}) }),
    resourceMetadataUrl: protectedResourceMetadataUrl(resource),
    requiredScopes: ['notes:read'],
  };
}

const metadataFor = (castellan: TestCastellan, resource: string) =>
  protectedResourceMetadata({ resource, issuer: castellan.issuer, scopesSupported: ['notes:read', 'notes:write'], resourceName: 'Test notes' });

const toolScopes = (query: URLSearchParams): string[] => (query.get('tool') === 'write' ? ['notes:write'] : []);

const startNodeSite: SiteFactory = async (castellan, port, resource) => {
  const auth = createNodeBearerAuth(authOptions(castellan, resource));
  const down = createNodeBearerAuth(authOptions(castellan, resource, `http://127.0.0.1:${await freePort()}/jwks`));
  const metadata = createNodeProtectedResourceMetadataHandler(metadataFor(castellan, resource));
  const server = createServer((req, res) => {
    void (async () => {
      if (metadata(req, res)) return;
      const url = new URL(req.url ?? '/', 'http://x');
      const guard = url.pathname === '/down' ? down : auth;
      const info = await guard.authenticate(req, res);
      if (!info) return;
      try {
        requireScopes(info, toolScopes(url.searchParams));
      } catch (error) {
        guard.reject(res, error);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ clientId: info.clientId, scopes: info.scopes, token: info.token }));
    })();
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    resource, port,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
};

const startKoaSite: SiteFactory = async (castellan, port, resource) => {
  const app = new Koa<BearerAuthState>();
  const auth = koaBearerAuth(authOptions(castellan, resource));
  const down = koaBearerAuth(authOptions(castellan, resource, `http://127.0.0.1:${await freePort()}/jwks`));
  app.use(koaProtectedResourceMetadata(metadataFor(castellan, resource)));
  app.use((ctx, next) => (ctx.path === '/down' ? down(ctx, next) : auth(ctx, next)));
  app.use((ctx) => {
    // A tool handler: throws, and koaBearerAuth turns it into the 403 challenge.
    requireScopes(ctx.state.auth, toolScopes(new URLSearchParams(ctx.querystring)));
    ctx.body = { clientId: ctx.state.auth.clientId, scopes: ctx.state.auth.scopes, token: ctx.state.auth.token };
  });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    resource, port,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
};

/** One HTTP/1.1 request written byte for byte; returns the status and the headers. */
function rawRequest(port: number, target: string, headerLines: Buffer[]): Promise<{ status: number; headers: Map<string, string[]> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = ''] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers = new Map<string, string[]>();
      for (const line of lines) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).toLowerCase();
        headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers });
    });
    socket.write(Buffer.concat([
      Buffer.from(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n`, 'latin1'),
      ...headerLines.flatMap((line) => [line, Buffer.from('\r\n')]),
      Buffer.from('\r\n'),
    ]));
  });
}

const header = (value: string) => Buffer.from(`Authorization: ${value}`, 'latin1');

describe.each([
  ['node:http', startNodeSite],
  ['Koa', startKoaSite],
] as const)('bearer auth through the %s adapter, against a real Castellan on FerretDB + Redis', (_name, startSite) => {
  let castellan: TestCastellan;
  let site: Site;
  let readToken: string;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', `rs_adapters_${_name.replace(/\W/g, '')}`);
    const port = await freePort();
    const resource = `http://127.0.0.1:${port}/mcp`;
    await addDemoResources(castellan, [{ uri: resource, scopes: ['notes:read', 'notes:write'], accessTokenFormat: 'jwt' }]);
    site = await startSite(castellan, port, resource);
    readToken = await serviceToken(castellan, { resource, scope: 'notes:read' });
  });
  afterAll(async () => {
    await site?.close();
    await castellan?.stop();
  });

  const url = (path: string) => `http://127.0.0.1:${site.port}${path}`;
  const get = (path: string, authorization?: string) => fetch(url(path), authorization ? { headers: { authorization } } : {});
  const challengeOf = (response: Response) => response.headers.get('www-authenticate') ?? '';

  it('answers a request without a token 401 with resource_metadata and scope, and no error code (RFC 6750 §3.1)', async () => {
    const response = await get('/mcp');
    expect(response.status).toBe(401);
    expect(challengeOf(response)).toBe(`Bearer resource_metadata="http://127.0.0.1:${site.port}/.well-known/oauth-protected-resource/mcp", scope="notes:read"`);
  });

  it('lets a client discover the AS from the 401: PRM at both well-known paths, then RFC 8414 metadata', async () => {
    const challenge = challengeOf(await get('/mcp'));
    const prmUrl = /resource_metadata="([^"]+)"/.exec(challenge)?.[1] ?? '';
    const [suffixed, root] = await Promise.all([fetch(prmUrl), get('/.well-known/oauth-protected-resource')]);
    expect(suffixed.status).toBe(200);
    expect(root.status).toBe(200);
    expect(suffixed.headers.get('content-type')).toMatch(/^application\/json/);
    expect(suffixed.headers.get('access-control-allow-origin')).toBe('*');
    const document = (await suffixed.json()) as Record<string, unknown>;
    expect(await root.json()).toEqual(document);
    expect(document).toEqual({
      resource: site.resource,
      authorization_servers: [castellan.issuer],
      scopes_supported: ['notes:read', 'notes:write'],
      bearer_methods_supported: ['header'],
      resource_name: 'Test notes',
    });
    const issuer = new URL(castellan.issuer);
    const asMetadata = await fetch(`${issuer.origin}/.well-known/oauth-authorization-server${issuer.pathname}`);
    expect(asMetadata.status).toBe(200);
    expect(((await asMetadata.json()) as { issuer: string }).issuer).toBe(castellan.issuer);

    expect((await fetch(prmUrl, { method: 'POST' })).status).toBe(405);
    const head = await fetch(prmUrl, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await get('/.well-known/oauth-protected-resource/other')).status).not.toBe(200);
  });

  it('accepts a valid token, case-insensitive scheme and extra spaces included, and hides the raw token from the handler', async () => {
    for (const authorization of [`Bearer ${readToken}`, `bearer ${readToken}`, `BEARER  ${readToken}`]) {
      const response = await get('/mcp', authorization);
      expect(response.status, authorization.slice(0, 8)).toBe(200);
      expect(await response.json()).toEqual({ clientId: 'demo-service', scopes: ['notes:read'], token: '' });
    }
  });

  it('answers a tool needing more scope 403 insufficient_scope, asking for what the token had plus what is missing', async () => {
    const response = await get('/mcp?tool=write', `Bearer ${readToken}`);
    expect(response.status).toBe(403);
    expect(challengeOf(response)).toBe(
      `Bearer error="insufficient_scope", scope="notes:read notes:write", resource_metadata="http://127.0.0.1:${site.port}/.well-known/oauth-protected-resource/mcp", error_description="missing scope: notes:write"`,
    );
    expect(await response.json()).toMatchObject({ error: 'insufficient_scope' });
    // Step-up: a token with both scopes gets through.
    const both = await serviceToken(castellan, { resource: site.resource, scope: 'notes:read notes:write' });
    expect((await get('/mcp?tool=write', `Bearer ${both}`)).status).toBe(200);
    // A write-only token misses the route's own notes:read.
    const writeOnly = await serviceToken(castellan, { resource: site.resource, scope: 'notes:write' });
    const refused = await get('/mcp', `Bearer ${writeOnly}`);
    expect(refused.status).toBe(403);
    expect(challengeOf(refused)).toContain('scope="notes:write notes:read"');
  });

  it('answers a token for another resource 401 invalid_token with a description', async () => {
    const foreign = await serviceToken(castellan, { resource: 'http://localhost:3001/mcp', scope: 'notes:read' });
    const response = await get('/mcp', `Bearer ${foreign}`);
    expect(response.status).toBe(401);
    expect(challengeOf(response)).toBe(
      `Bearer resource_metadata="http://127.0.0.1:${site.port}/.well-known/oauth-protected-resource/mcp", scope="notes:read", error="invalid_token", error_description="issued for another resource"`,
    );
  });

  it('answers 503, not 401, when the token cannot be checked', async () => {
    const response = await get('/down', `Bearer ${readToken}`);
    expect(response.status).toBe(503);
    expect(response.headers.get('www-authenticate')).toBeNull();
    expect(await response.json()).toMatchObject({ error: 'temporarily_unavailable' });
  });

  const malformed: Array<[string, Buffer[], 'none' | 'invalid_request' | 'invalid_token']> = [
    ['another scheme', [header('Basic ZGVtbzpwdw==')], 'none'],
    ['an empty header', [Buffer.from('Authorization:')], 'invalid_request'],
    ['Bearer alone', [header('Bearer')], 'invalid_request'],
    ['Bearer and spaces', [header('Bearer    ')], 'invalid_request'],
    ['two tokens', [header('Bearer abc def')], 'invalid_request'],
    ['a quoted token', [header('Bearer "abc"')], 'invalid_request'],
    ['a comma list', [header('Bearer abc, Bearer def')], 'invalid_request'],
    ['padding first', [header('Bearer =abc')], 'invalid_request'],
    ['non-ASCII bytes', [Buffer.concat([header('Bearer abc'), Buffer.from([0xff, 0xfe, 0xe9])])], 'invalid_request'],
    ['an oversized token', [header(`Bearer ${'a'.repeat(9000)}`)], 'invalid_request'],
    ['two Authorization headers', [header('Bearer abc'), header('Bearer def')], 'invalid_request'],
    ['a junk token', [header('Bearer abc')], 'invalid_token'],
    ['a junk JWT', [header('Bearer a.b.c')], 'invalid_token'],
    ['an unsigned JWT', [header('Bearer eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.')], 'invalid_token'],
  ];

  it.each(malformed)('answers %s with 401 and the right challenge, never 500', async (_label, lines, error) => {
    const response = await rawRequest(site.port, '/mcp', lines);
    expect(response.status).toBe(401);
    const challenge = response.headers.get('www-authenticate')?.[0] ?? '';
    expect(challenge).toMatch(/^Bearer resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp", scope="notes:read"/);
    if (error === 'none') expect(challenge).not.toContain('error=');
    else expect(challenge).toContain(`error="${error}"`);
  });

  it('refuses a token in the query string (401 invalid_request), even a valid one', async () => {
    const response = await get(`/mcp?access_token=${readToken}`);
    expect(response.status).toBe(401);
    expect(challengeOf(response)).toContain('error="invalid_request"');
  });

  it('never answers 500 to headers too large or broken for the HTTP parser', async () => {
    for (const lines of [[header(`Bearer ${'a'.repeat(20_000)}`)], [Buffer.from('Authorization: Bearer a\x00b', 'latin1')]]) {
      const response = await rawRequest(site.port, '/mcp', lines);
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
    }
  });
});
