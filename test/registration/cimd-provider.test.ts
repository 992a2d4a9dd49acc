import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Configuration, type JWKS } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicyHooks } from '../../src/policy/defaults.ts';
import type { PolicyHooks, RegistrationRequest } from '../../src/policy/hooks.ts';
import { createMemoryModelStores } from '../../src/storage/memory/memory-model-store.ts';
import { createAdapterFactory } from '../../src/storage/oidc-adapter.ts';
import {
  CIMD_FETCH_RESPONSE_BODY_LIMITS,
  clientIdMetadataDocumentFeature,
  createTenantFetch,
  type CimdRefusal,
} from '../../src/registration/cimd/cimd-feature.ts';
import { createMemoryDocumentCache, createRedisDocumentCache, type DocumentCache } from '../../src/registration/cimd/document-cache.ts';
import { clientIdMetadataDocumentSchema, type ClientIdMetadataDocumentSettings } from '../../src/tenants/tenant-settings.ts';
import { deleteRedisKeys, testServers, uniqueRedisPrefix } from '../support/servers.ts';
import { makeTestPki, startDocumentServer, testLookup, type DocumentServer, type TestPki } from './fixtures/cimd-document-server.ts';

let pki: TestPki;
let docs: DocumentServer;
let jwks: JWKS;

beforeAll(async () => {
  pki = makeTestPki('Castellan CIMD provider test CA');
  docs = await startDocumentServer(pki);
  // Like a real tenant: RS256 for id_tokens, ES256 for access tokens.
  const keys = await Promise.all((['RS256', 'ES256'] as const).map(async (alg) => {
    const { privateKey } = await generateKeyPair(alg, { extractable: true });
    return { ...(await exportJWK(privateKey)), alg, use: 'sig', kid: alg };
  }));
  jwks = { keys };
});

afterAll(async () => {
  await docs?.close();
});

const acceptAll: PolicyHooks = { ...defaultPolicyHooks, acceptRegistration: async () => ({ accept: true }) };

interface TenantOptions {
  settings?: Partial<ClientIdMetadataDocumentSettings>;
  policy?: PolicyHooks;
  cache?: DocumentCache;
  issuer?: string;
}

/** A tenant's provider the way Castellan configures one, reduced to what CIMD touches. */
function tenantProvider(options: TenantOptions = {}) {
  const settings = clientIdMetadataDocumentSchema.parse({ enabled: true, privateNetworkAllowlist: ['127.0.0.1'], ...options.settings });
  const refusals: CimdRefusal[] = [];
  const onRefused = (refusal: CimdRefusal) => refusals.push(refusal);
  const allowedScopes = ['openid', 'notes:read'];
  const { lookup } = testLookup();
  const store = createMemoryModelStores().forNamespace('acme');
  const configuration: Configuration = {
    adapter: createAdapterFactory({ durable: store, ephemeral: store }),
    jwks,
    ttl: { Interaction: 600 },
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', 'notes:read', 'notes:write'],
    pkce: { required: () => true },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    extraClientMetadata: { properties: ['software_id', 'software_version'] },
    clientDefaults: {
      grant_types: ['authorization_code'],
      id_token_signed_response_alg: 'RS256',
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    features: {
      devInteractions: { enabled: false },
      clientIdMetadataDocument: clientIdMetadataDocumentFeature({
        tenantId: 'acme',
        settings,
        allowedScopes,
        policy: options.policy ?? acceptAll,
        onRefused,
      }),
    },
    fetch: createTenantFetch({
      tenantId: 'acme',
      settings,
      allowedScopes,
      cache: options.cache ?? createMemoryDocumentCache(),
      ca: pki.caCert,
      lookup,
      timeoutMs: 500,
      onRefused,
    }),
    fetchResponseBodyLimits: CIMD_FETCH_RESPONSE_BODY_LIMITS,
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
  const provider = new Provider(options.issuer ?? 'https://as.example/t/acme', configuration);
  return { provider, refusals };
}

/** Serves a document at a fresh path and returns its URL (the client_id). */
function publish(name: string, members: Record<string, unknown> = {}, headers: Record<string, string> = {}, host = 'cimd.test') {
  const path = `/clients/${name}-${randomBytes(4).toString('hex')}.json`;
  const url = docs.url(path, host);
  docs.json(path, {
    client_id: url,
    client_name: `Agent ${name}`,
    redirect_uris: ['http://127.0.0.1/callback'],
    token_endpoint_auth_method: 'none',
    ...members,
  }, headers);
  return { url, path };
}

async function refusal(promise: Promise<unknown>): Promise<{ error: string; error_description: string }> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected the client to be refused').toBeInstanceOf(Error);
  return error as { error: string; error_description: string };
}

describe('Client ID Metadata Documents on oidc-provider', () => {
  it('resolves a URL client_id to a public native client and fetches it once', async () => {
    const { provider, refusals } = tenantProvider();
    const { url, path } = publish('valid', { scope: 'openid notes:read', client_uri: 'https://agent.example/', software_id: 'agent' });
    const client = await provider.Client.find(url);
    expect(client).toBeDefined();
    expect(client?.clientId).toBe(url);
    expect(client?.metadata()).toMatchObject({
      client_id: url,
      client_name: 'Agent valid',
      token_endpoint_auth_method: 'none',
      // Loopback redirects only: native, so any loopback port matches (RFC 8252 §7.3).
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/callback'],
      client_uri: 'https://agent.example/',
      software_id: 'agent',
    });
    await provider.Client.find(url);
    expect(docs.hits(path)).toBe(1);
    expect(refusals).toEqual([]);
  });

  it('accepts a web client with https redirects, and a private_key_jwt client with its keys', async () => {
    const { provider, refusals } = tenantProvider();
    const web = publish('web', { redirect_uris: ['https://agent.example/callback'] });
    expect((await provider.Client.find(web.url))?.metadata()).toMatchObject({ application_type: 'web', token_endpoint_auth_method: 'none' });
    const { publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'agent-key' };
    const signed = publish('signed', { token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } });
    const client = await provider.Client.find(signed.url);
    expect(client?.tokenEndpointAuthMethod).toBe('private_key_jwt');
    expect(client?.metadata().jwks).toMatchObject({ keys: [{ kid: 'agent-key' }] });
    expect(refusals).toEqual([]);
  });

  it('takes a document with no token_endpoint_auth_method as a public client', async () => {
    const { provider } = tenantProvider();
    const { url } = publish('no-method', { token_endpoint_auth_method: undefined });
    expect((await provider.Client.find(url))?.tokenEndpointAuthMethod).toBe('none');
  });

  it('a fresh provider (another node, or after a restart) gets the document from the shared Redis cache', async () => {
    const { redisUrl } = testServers();
    const prefix = uniqueRedisPrefix('cimd-provider');
    const redisA = new Redis(redisUrl);
    const redisB = new Redis(redisUrl);
    try {
      const { url, path } = publish('shared', {}, { 'cache-control': 'max-age=300' });
      const nodeA = tenantProvider({ cache: createRedisDocumentCache(redisA, { prefix }) });
      const nodeB = tenantProvider({ cache: createRedisDocumentCache(redisB, { prefix }) });
      expect((await nodeA.provider.Client.find(url))?.clientId).toBe(url);
      expect((await nodeB.provider.Client.find(url))?.clientId).toBe(url);
      expect(docs.hits(path)).toBe(1);
    } finally {
      await deleteRedisKeys(redisA, prefix);
      redisA.disconnect();
      redisB.disconnect();
    }
  });

  it('refuses a document on loopback unless the tenant allows it', async () => {
    const { provider, refusals } = tenantProvider({ settings: { privateNetworkAllowlist: [] } });
    const { url, path } = publish('loopback');
    expect((await refusal(provider.Client.find(url))).error).toBe('invalid_client');
    expect(docs.hits(path)).toBe(0);
    expect(refusals).toMatchObject([{ tenantId: 'acme', clientId: url, stage: 'fetch', code: 'ADDRESS_REFUSED' }]);
    const allowedByName = tenantProvider({ settings: { privateNetworkAllowlist: ['cimd.test'] } });
    expect((await allowedByName.provider.Client.find(url))?.clientId).toBe(url);
  });

  it.each([
    ['a shared-secret auth method', { token_endpoint_auth_method: 'client_secret_post' }],
    ['client_secret_basic', { token_endpoint_auth_method: 'client_secret_basic' }],
    ['a client_secret', { client_secret: 'hunter2' }],
    ['an http redirect_uri off loopback', { redirect_uris: ['http://agent.example/callback'] }],
    ['a redirect_uri with a fragment', { redirect_uris: ['https://agent.example/callback#x'] }],
    ['a wildcard redirect_uri', { redirect_uris: ['https://*.agent.example/callback'] }],
    ['a scope the tenant does not allow', { scope: 'openid notes:write' }],
    ['a non-https logo_uri', { logo_uri: 'http://agent.example/logo.png' }],
    ['client_credentials', { grant_types: ['client_credentials'], redirect_uris: undefined }],
  ])('refuses a document with %s', async (_name, members) => {
    const { provider, refusals } = tenantProvider();
    const { url } = publish('bad', members);
    expect((await refusal(provider.Client.find(url))).error).toBe('invalid_client');
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ clientId: url, stage: 'document' });
    expect(refusals[0]?.code).toMatch(/^INVALID_(CLIENT_METADATA|REDIRECT_URI)$/u);
  });

  it('refuses a document whose client_id is not its URL', async () => {
    const { provider, refusals } = tenantProvider();
    const { url, path } = publish('mismatch');
    docs.json(path, { client_id: `${url}?other`, redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none' });
    expect((await refusal(provider.Client.find(url))).error).toBe('invalid_client');
    expect(refusals).toMatchObject([{ stage: 'document', code: 'INVALID_CLIENT_METADATA' }]);
    expect(refusals[0]?.reason).toContain('names another client_id');
  });

  it('refuses documents behind redirects, too large, not JSON, or slow', async () => {
    const { provider, refusals } = tenantProvider();
    const target = publish('redirect-target');
    docs.route('/clients/redirect.json', (_req, res) => res.writeHead(301, { location: target.url }).end());
    docs.route('/clients/huge.json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ client_id: docs.url('/clients/huge.json'), pad: 'x'.repeat(70_000) }));
    });
    docs.route('/clients/html.json', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(JSON.stringify({ client_id: docs.url('/clients/html.json') }));
    });
    for (const path of ['/clients/redirect.json', '/clients/huge.json', '/clients/html.json']) {
      expect((await refusal(provider.Client.find(docs.url(path)))).error, path).toBe('invalid_client');
    }
    expect(refusals.map((r) => r.code)).toEqual(['REDIRECT_REFUSED', 'TOO_LARGE', 'CONTENT_TYPE_REFUSED']);
    expect(docs.hits(target.path)).toBe(0);

    docs.route('/clients/slow.json', () => {});
    const started = Date.now();
    expect((await refusal(provider.Client.find(docs.url('/clients/slow.json')))).error).toBe('invalid_client');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(refusals.at(-1)?.code).toBe('TIMEOUT');
  });

  it('applies the tenant host allowlist and denylist before fetching', async () => {
    const allowlisted = tenantProvider({ settings: { hosts: { mode: 'allowlist', list: ['*.cimd.test'] } } });
    const inList = publish('in-list', {}, {}, 'apps.cimd.test');
    const offList = publish('off-list', {}, {}, 'other.test');
    expect((await allowlisted.provider.Client.find(inList.url))?.clientId).toBe(inList.url);
    expect((await refusal(allowlisted.provider.Client.find(offList.url))).error).toBe('invalid_client');
    expect(docs.hits(offList.path)).toBe(0);
    expect(allowlisted.refusals).toMatchObject([{ stage: 'host', clientId: offList.url }]);

    const denylisted = tenantProvider({ settings: { hosts: { mode: 'denylist', list: ['other.test'] } } });
    expect((await refusal(denylisted.provider.Client.find(offList.url))).error).toBe('invalid_client');
    expect(docs.hits(offList.path)).toBe(0);
    expect((await denylisted.provider.Client.find(inList.url))?.clientId).toBe(inList.url);
  });

  it('asks the tenant policy about every use of a document client, and honours a refusal', async () => {
    const asked: RegistrationRequest[] = [];
    let accept = true;
    const policy: PolicyHooks = {
      ...acceptAll,
      acceptRegistration: async (request) => {
        asked.push(request);
        return accept ? { accept: true } : { accept: false, reason: 'not on our list of agents' };
      },
    };
    const { provider, refusals } = tenantProvider({ policy });
    const { url, path } = publish('policy');
    expect((await provider.Client.find(url))?.clientId).toBe(url);
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ tenant: 'acme', kind: 'client-id-metadata-document', metadata: { client_id: url } });
    accept = false;
    expect((await refusal(provider.Client.find(url))).error).toBe('invalid_client');
    expect(docs.hits(path)).toBe(1);
    expect(refusals).toMatchObject([{ stage: 'policy', reason: 'not on our list of agents' }]);
  });

  it('advertises support, and starts an authorization for a document client at any loopback port', async () => {
    let server: Server | undefined;
    try {
      server = createServer();
      await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const { provider } = tenantProvider({ issuer: base });
      server.on('request', provider.callback());
      const discovery = await fetch(`${base}/.well-known/openid-configuration`);
      expect(await discovery.json()).toMatchObject({ client_id_metadata_document_supported: true });
      const { url } = publish('authorize');
      const verifier = randomBytes(32).toString('base64url');
      const authorize = (redirectUri: string, clientId = url) => {
        const query = new URLSearchParams({
          client_id: clientId,
          redirect_uri: redirectUri,
          response_type: 'code',
          scope: 'openid',
          code_challenge: createHash('sha256').update(verifier).digest('base64url'),
          code_challenge_method: 'S256',
        });
        return fetch(`${base}/auth?${query}`, { redirect: 'manual' });
      };
      const started = await authorize('http://127.0.0.1:49152/callback');
      expect(started.status).toBe(303);
      expect(started.headers.get('location')).toMatch(/\/interaction\//u);

      const wrongRedirect = await authorize('https://attacker.example/callback');
      expect(wrongRedirect.status).toBe(400);
      expect(await wrongRedirect.json()).toMatchObject({ error: 'invalid_redirect_uri' });

      const refused = await authorize('http://127.0.0.1:49152/callback', docs.url('/clients/none-such.json'));
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ error: 'invalid_client' });
    } finally {
      server?.closeAllConnections();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    }
  });
});
