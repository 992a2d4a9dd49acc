import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { makeTestPki, startDocumentServer, type DocumentServer } from '../registration/fixtures/cimd-document-server.ts';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { HeadlessOAuthProvider } from '../support/mcp-client-provider.ts';
import { followAuthorization, newBrowser } from '../support/oauth.ts';

/**
 * A stand-in MCP server that only publishes its RFC 9728 metadata: enough for the SDK's
 * auth() to discover Castellan the way it does against any MCP server.
 */
async function startProtectedResource(issuer: () => string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.url === '/.well-known/oauth-protected-resource/mcp' || req.url === '/.well-known/oauth-protected-resource') {
      const { port } = server.address() as AddressInfo;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        resource: `http://127.0.0.1:${port}/mcp`,
        authorization_servers: [issuer()],
        scopes_supported: ['notes:read', 'notes:write'],
        bearer_methods_supported: ['header'],
      }));
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}/mcp` };
}

describe('the MCP TypeScript SDK client auth flow against Castellan (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let resource: { server: Server; url: string };
  let documents: DocumentServer;
  beforeAll(async () => {
    // Client ID Metadata Documents come from an HTTPS server with a test CA that Castellan
    // is told to trust (CASTELLAN_FETCH_CA_FILE), on loopback, which the tenant allowlists.
    const pki = makeTestPki('castellan e2e test CA');
    documents = await startDocumentServer(pki);
    const caFile = join(await mkdtemp(join(tmpdir(), 'castellan-e2e-ca-')), 'ca.pem');
    await writeFile(caFile, pki.caCert);
    const env = { ...(await testEnvironment('mongo+redis', 'mcp_sdk')), CASTELLAN_FETCH_CA_FILE: caFile };
    castellan = await startTestCastellan('mongo+redis', 'mcp_sdk', env);
    resource = await startProtectedResource(() => castellan.issuer);
    // The MCP server is a resource of the demo tenant.
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        resources: [...(DEMO_TENANT_SETTINGS.resources ?? []), { uri: resource.url, scopes: ['notes:read', 'notes:write'] }],
        clientIdMetadataDocuments: { enabled: true, privateNetworkAllowlist: ['127.0.0.1'] },
      },
    });
    castellan.running.tenants.invalidate('demo');
  });
  afterAll(async () => {
    resource?.server.close();
    await documents?.close();
    await castellan?.stop();
  });

  it('registers through DCR, runs auth code + PKCE and gets a token for the MCP server', async () => {
    const provider = new HeadlessOAuthProvider({ redirectUrl: 'http://127.0.0.1:47123/callback', clientName: 'SDK agent (DCR)' });
    expect(await auth(provider, { serverUrl: resource.url, scope: 'notes:read' })).toBe('REDIRECT');
    expect(provider.registrations).toBe(1);
    const clientId = provider.clientInformation()?.client_id;
    expect(clientId).toEqual(expect.any(String));

    const authorizationUrl = provider.authorizationUrl;
    expect(authorizationUrl?.href.startsWith(`${castellan.issuer}/auth?`)).toBe(true);
    expect(authorizationUrl?.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorizationUrl?.searchParams.get('resource')).toBe(resource.url);

    const params = await followAuthorization(newBrowser(), authorizationUrl?.href ?? '', provider.redirectUrl, 'demo', castellan.userPassword);
    const code = params.get('code');
    expect(code, params.toString()).toEqual(expect.any(String));
    expect(await auth(provider, { serverUrl: resource.url, authorizationCode: code ?? '' })).toBe('AUTHORIZED');

    const tokens = provider.tokens();
    const { payload } = await jwtVerify(String(tokens?.access_token), createRemoteJWKSet(new URL(`${castellan.issuer}/jwks`)), {
      issuer: castellan.issuer,
      audience: resource.url,
    });
    expect(payload.client_id).toBe(clientId);
    expect(payload.scope).toBe('notes:read');
  });

  it('identifies the client by a Client ID Metadata Document URL, without registering', async () => {
    const clientId = documents.url('/agent/client.json', '127.0.0.1');
    const redirectUrl = 'http://127.0.0.1:47124/callback';
    documents.json('/agent/client.json', {
      client_id: clientId,
      client_name: 'SDK agent (CIMD)',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }, { 'cache-control': 'max-age=300' });
    const provider = new HeadlessOAuthProvider({ redirectUrl, clientName: 'SDK agent (CIMD)', clientMetadataUrl: clientId });

    expect(await auth(provider, { serverUrl: resource.url, scope: 'notes:write' })).toBe('REDIRECT');
    // The SDK saves the URL itself as its client information: no registration took place.
    expect(provider.clientInformation()).toMatchObject({ client_id: clientId });
    expect(provider.clientInformation()).not.toHaveProperty('registration_access_token');
    expect(provider.authorizationUrl?.searchParams.get('client_id')).toBe(clientId);

    const params = await followAuthorization(newBrowser(), provider.authorizationUrl?.href ?? '', redirectUrl, 'demo', castellan.userPassword);
    const code = params.get('code');
    expect(code, params.toString()).toEqual(expect.any(String));
    expect(await auth(provider, { serverUrl: resource.url, authorizationCode: code ?? '' })).toBe('AUTHORIZED');

    const { payload } = await jwtVerify(String(provider.tokens()?.access_token), createRemoteJWKSet(new URL(`${castellan.issuer}/jwks`)), {
      issuer: castellan.issuer,
      audience: resource.url,
    });
    expect(payload.client_id).toBe(clientId);
    expect(payload.scope).toBe('notes:write');
    expect(documents.hits('/agent/client.json')).toBeGreaterThanOrEqual(1);
  });
});
