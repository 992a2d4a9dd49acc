import { afterAll, beforeAll, expect } from 'vitest';
import { loadSettings } from '../../src/config/settings.ts';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../../test/support/castellan.ts';
import { conformanceSuite } from '../support/scenario.ts';
import { authorizationServerMetadataUrlOf, getJson, protectedResourceMetadataUrlOf, startMcpWorld, type McpWorld } from '../support/mcp-world.ts';

/*
 * Castellan's metadata documents, field by field: RFC 8414 (OAuth 2.0 Authorization Server
 * Metadata) §2 and §3, OpenID Connect Discovery 1.0 §3 and §4, RFC 9728 (Protected Resource
 * Metadata) for the example MCP servers, their consistency with the AS, the MCP 2025-11-25
 * authorization requirements, and the JWKS. Castellan runs on FerretDB + Redis with the demo
 * tenant (open DCR, CIMD on); a second tenant with both off shows the members go away; a second
 * Castellan with an https base URL behind a TLS-terminating proxy shows the https rules.
 */

/** Members whose value is an endpoint URL (RFC 8414 §2, OIDC Discovery §3, RFC 7662/7009/9126/8628, RP-initiated logout). */
const ENDPOINT_MEMBERS = [
  'authorization_endpoint', 'token_endpoint', 'jwks_uri', 'registration_endpoint', 'userinfo_endpoint',
  'introspection_endpoint', 'revocation_endpoint', 'pushed_authorization_request_endpoint',
  'device_authorization_endpoint', 'end_session_endpoint',
] as const;

/** Members that are JSON arrays of strings where present (RFC 8414 §2, OIDC Discovery §3). */
const STRING_ARRAY_MEMBERS = [
  'scopes_supported', 'response_types_supported', 'response_modes_supported', 'grant_types_supported',
  'token_endpoint_auth_methods_supported', 'token_endpoint_auth_signing_alg_values_supported',
  'code_challenge_methods_supported', 'subject_types_supported', 'id_token_signing_alg_values_supported',
  'claims_supported', 'claim_types_supported', 'introspection_endpoint_auth_methods_supported',
  'revocation_endpoint_auth_methods_supported', 'ui_locales_supported',
] as const;

const BOOLEAN_MEMBERS = [
  'claims_parameter_supported', 'request_parameter_supported', 'request_uri_parameter_supported',
  'require_request_uri_registration', 'authorization_response_iss_parameter_supported',
  'client_id_metadata_document_supported',
] as const;

/** JWK members that hold private key material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const isLoopbackHost = (host: string) => host === 'localhost' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);

function expectStringArray(metadata: Record<string, unknown>, member: string): string[] {
  const value = metadata[member];
  expect(Array.isArray(value), `${member} is a JSON array`).toBe(true);
  const values = value as unknown[];
  expect(values.length, `${member} is not empty`).toBeGreaterThan(0);
  for (const entry of values) expect(typeof entry, `${member} holds strings`).toBe('string');
  return values as string[];
}

conformanceSuite('metadata', (scenario) => {
  let world: McpWorld;
  let castellan: TestCastellan;
  /** A Castellan whose base URL is https, reached over plain http as a TLS-terminating proxy would. */
  let behindProxy: TestCastellan;
  let behindProxyDirect: string;
  let as: Record<string, unknown>;

  beforeAll(async () => {
    world = await startMcpWorld('conformance_metadata');
    castellan = world.castellan;
    // A tenant with self-registration closed and Client ID Metadata Documents off (the defaults).
    await castellan.running.storage.tenants.create({ id: 'plain', displayName: 'Plain', settings: { scopes: ['notes:read'] } });
    const env: Record<string, string> = {
      ...(await testEnvironment('mongo+redis', 'conformance_metadata_https')),
      CASTELLAN_TRUST_PROXY: 'true',
      CASTELLAN_BASE_URL: 'https://auth.castellan.test',
    };
    behindProxyDirect = `http://127.0.0.1:${env.PORT}`;
    behindProxy = await startTestCastellan('mongo+redis', 'conformance_metadata_https', env);
    as = (await getJson(authorizationServerMetadataUrlOf(castellan.issuer))).body;
  });
  afterAll(async () => {
    await behindProxy?.stop();
    await world?.close();
  });

  scenario('RFC 8414 §3.1-3.2: metadata at the path-inserted well-known URL, 200 with a JSON object', async () => {
    const url = authorizationServerMetadataUrlOf(castellan.issuer);
    expect(url).toBe(`${castellan.baseUrl}/.well-known/oauth-authorization-server/t/demo`);
    const { body, response } = await getJson(url);
    expect(response.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(typeof body).toBe('object');
    expect(Array.isArray(body)).toBe(false);
  });

  scenario('RFC 8414 §3.3: issuer equals the issuer the metadata URL was built from, in every well-known form', async () => {
    const forms = [
      authorizationServerMetadataUrlOf(castellan.issuer),
      authorizationServerMetadataUrlOf(castellan.issuer, 'openid-configuration'),
      `${castellan.issuer}/.well-known/openid-configuration`,
      `${castellan.issuer}/.well-known/oauth-authorization-server`,
    ];
    for (const url of forms) {
      const { body } = await getJson(url);
      expect(body.issuer, url).toBe(castellan.issuer);
      // One document whatever the form (members of the same values).
      expect(body, url).toEqual(as);
    }
    // Another tenant's metadata names its own issuer, not the demo's.
    expect((await getJson(authorizationServerMetadataUrlOf(`${castellan.baseUrl}/t/plain`))).body.issuer).toBe(`${castellan.baseUrl}/t/plain`);
  });

  scenario('RFC 8414 §2: issuer is an http(s) URL without query or fragment (http only on loopback, as in this test run)', () => {
    const issuer = new URL(String(as.issuer));
    expect(issuer.search).toBe('');
    expect(issuer.hash).toBe('');
    expect(issuer.protocol === 'https:' || (issuer.protocol === 'http:' && isLoopbackHost(issuer.hostname))).toBe(true);
  });

  scenario('RFC 8414 §2: required members issuer, authorization_endpoint, token_endpoint, response_types_supported, and typed optional members', () => {
    for (const member of ['issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri']) {
      expect(typeof as[member], member).toBe('string');
    }
    expect(expectStringArray(as, 'response_types_supported')).toContain('code');
    for (const member of STRING_ARRAY_MEMBERS) if (member in as) expectStringArray(as, member);
    for (const member of BOOLEAN_MEMBERS) if (member in as) expect(typeof as[member], member).toBe('boolean');
    // OAuth 2.1: the code flow only; grant types name the code grant.
    expect(as.response_types_supported).toEqual(['code']);
    expect(expectStringArray(as, 'grant_types_supported')).toContain('authorization_code');
    expect(expectStringArray(as, 'token_endpoint_auth_methods_supported')).not.toContain('client_secret_jwt');
    // RFC 9207: authorization responses carry iss, and the metadata says so.
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
  });

  scenario('RFC 8414 §2: every endpoint is an absolute URL on the issuer, without fragment', () => {
    let seen = 0;
    for (const member of ENDPOINT_MEMBERS) {
      if (!(member in as)) continue;
      seen += 1;
      const url = new URL(String(as[member]));
      expect(url.hash, member).toBe('');
      expect(url.href.startsWith(`${castellan.issuer}/`), `${member} ${url.href} is under the issuer`).toBe(true);
    }
    expect(seen).toBeGreaterThanOrEqual(8);
  });

  scenario('RFC 8414 §2: with an https base URL behind a TLS-terminating proxy, issuer and every endpoint are https', async () => {
    const issuer = 'https://auth.castellan.test/t/demo';
    const { body } = await getJson(`${behindProxyDirect}/.well-known/oauth-authorization-server/t/demo`, {
      host: 'auth.castellan.test', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'auth.castellan.test',
    });
    expect(body.issuer).toBe(issuer);
    for (const member of ENDPOINT_MEMBERS) {
      if (member in body) expect(String(body[member]).startsWith(`${issuer}/`), `${member} ${String(body[member])}`).toBe(true);
    }
    // Reached without any forwarding headers (the proxy's hop as it is), it says the same.
    expect((await getJson(`${behindProxyDirect}/t/demo/.well-known/openid-configuration`)).body).toEqual(body);
  });

  scenario('RFC 8414 §2: a forged Host or X-Forwarded-Host cannot change the issuer or the endpoints', async () => {
    const { body } = await getJson(authorizationServerMetadataUrlOf(castellan.issuer), {
      'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https', forwarded: 'host=evil.example;proto=https',
    });
    expect(body).toEqual(as);
    const viaProxy = await getJson(`${behindProxyDirect}/.well-known/oauth-authorization-server/t/demo`, {
      host: 'evil.example', 'x-forwarded-host': 'evil.example',
    });
    expect(JSON.stringify(viaProxy.body)).not.toContain('evil.example');
  });

  scenario('RFC 8414 §2: a base URL that would make an http issuer off loopback is refused at start-up', () => {
    // The issuer identifier "MUST use the https scheme"; plain http is for local development.
    expect(() => loadSettings({ CASTELLAN_BASE_URL: 'http://auth.example.com' })).toThrow(/CASTELLAN_BASE_URL/);
    expect(loadSettings({ CASTELLAN_BASE_URL: 'https://auth.example.com' }).baseUrl).toBe('https://auth.example.com');
    expect(loadSettings({ CASTELLAN_BASE_URL: 'http://localhost:4000' }).baseUrl).toBe('http://localhost:4000');
  });

  scenario('OIDC Discovery §4.1-4.3: /.well-known/openid-configuration under the issuer, its issuer exactly the issuer', async () => {
    const { body, response } = await getJson(`${castellan.issuer}/.well-known/openid-configuration`);
    expect(response.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(body.issuer).toBe(castellan.issuer);
    // A trailing slash on the issuer is not the same issuer (§4.3 "exactly").
    expect(String(body.issuer).endsWith('/')).toBe(false);
  });

  scenario('OIDC Discovery §3: required members issuer, authorization_endpoint, token_endpoint, jwks_uri, response_types_supported, subject_types_supported, id_token_signing_alg_values_supported', async () => {
    const { body } = await getJson(`${castellan.issuer}/.well-known/openid-configuration`);
    for (const member of ['issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri']) expect(typeof body[member], member).toBe('string');
    expectStringArray(body, 'response_types_supported');
    const subjectTypes = expectStringArray(body, 'subject_types_supported');
    for (const type of subjectTypes) expect(['public', 'pairwise']).toContain(type);
    const algs = expectStringArray(body, 'id_token_signing_alg_values_supported');
    expect(algs).toContain('RS256');
    expect(algs).not.toContain('none');
  });

  scenario('OIDC Discovery §3: userinfo_endpoint, scopes_supported with openid, claims_supported with sub', async () => {
    const { body } = await getJson(`${castellan.issuer}/.well-known/openid-configuration`);
    expect(body.userinfo_endpoint).toBe(`${castellan.issuer}/me`);
    expect(expectStringArray(body, 'scopes_supported')).toContain('openid');
    expect(expectStringArray(body, 'claims_supported')).toContain('sub');
    // What the userinfo endpoint answers to a request without a token: 401 with a Bearer challenge (RFC 6750 §3).
    const userinfo = await fetch(String(body.userinfo_endpoint));
    expect(userinfo.status).toBe(401);
    expect(userinfo.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
  });

  scenario('OIDC Discovery §3: the request, request_uri and claims parameters are advertised as unsupported (oidf-basic checks how they are answered)', () => {
    // Absent request_parameter_supported means false (§3); Castellan says so or leaves it out.
    expect(as.request_parameter_supported ?? false).toBe(false);
    expect(as.request_uri_parameter_supported).toBe(false);
    expect(as.claims_parameter_supported).toBe(false);
  });

  scenario('RFC 9728 §3.1: each example MCP server serves its metadata at the path-inserted well-known URL, resource equal to the server URL', async () => {
    for (const server of [world.notes, world.reports]) {
      const url = protectedResourceMetadataUrlOf(server.url);
      expect(url).toMatch(/\/\.well-known\/oauth-protected-resource\/(mcp|api)$/);
      const { body, response } = await getJson(url);
      expect(response.headers.get('content-type')).toMatch(/^application\/json\b/);
      // §3.3: the resource in the document is the one whose URL it was fetched for.
      expect(body.resource, url).toBe(server.url);
    }
  });

  scenario('RFC 9728 §2: authorization_servers lists the Castellan issuer, whose RFC 8414 metadata names that issuer', async () => {
    for (const server of [world.notes, world.reports]) {
      const { body } = await getJson(protectedResourceMetadataUrlOf(server.url));
      expect(body.authorization_servers).toEqual([castellan.issuer]);
      const asMetadata = (await getJson(authorizationServerMetadataUrlOf(castellan.issuer))).body;
      expect(asMetadata.issuer).toBe(castellan.issuer);
    }
  });

  scenario('RFC 9728 §2: bearer_methods_supported is the Authorization header only, scopes_supported an array of scope tokens', async () => {
    for (const server of [world.notes, world.reports]) {
      const { body } = await getJson(protectedResourceMetadataUrlOf(server.url));
      expect(body.bearer_methods_supported).toEqual(['header']);
      for (const scope of expectStringArray(body, 'scopes_supported')) expect(scope).toMatch(/^[\x21\x23-\x5B\x5D-\x7E]+$/);
      // A token in the query is not taken (RFC 6750 §2.3 is not offered).
      const inQuery = await fetch(`${server.url}?access_token=abc`, {
        method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}',
      });
      expect(inQuery.status).toBe(401);
    }
  });

  scenario('RFC 9728 §5.1: the 401 challenge names the metadata URL in resource_metadata', async () => {
    for (const server of [world.notes, world.reports]) {
      const response = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(response.status).toBe(401);
      const challenge = response.headers.get('www-authenticate') ?? '';
      expect(challenge).toMatch(/^Bearer /);
      expect(challenge).toContain(`resource_metadata="${protectedResourceMetadataUrlOf(server.url)}"`);
    }
  });

  scenario('consistency: every scope a protected resource advertises is in the AS scopes_supported, and is a scope of that resource at the AS', async () => {
    const asScopes = expectStringArray(as, 'scopes_supported');
    for (const server of [world.notes, world.reports]) {
      const { body } = await getJson(protectedResourceMetadataUrlOf(server.url));
      const scopes = expectStringArray(body, 'scopes_supported');
      for (const scope of scopes) expect(asScopes, `${server.url} advertises ${scope}`).toContain(scope);
      // The AS issues tokens for this resource with each of them (RFC 8707 resource + scope).
      const response = await fetch(`${castellan.issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`demo-service:${castellan.clientSecret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: server.url, scope: scopes.join(' ') }).toString(),
      });
      const token = (await response.json()) as Record<string, unknown>;
      expect(response.status, JSON.stringify(token)).toBe(200);
      expect(String(token.scope).split(' ').sort()).toEqual([...scopes].sort());
    }
  });

  scenario('MCP 2025-11-25: code_challenge_methods_supported contains S256 and not plain', () => {
    const methods = expectStringArray(as, 'code_challenge_methods_supported');
    expect(methods).toContain('S256');
    expect(methods).not.toContain('plain');
  });

  scenario('MCP 2025-11-25: client_id_metadata_document_supported is true with CIMD on, and not true with it off', async () => {
    expect(as.client_id_metadata_document_supported).toBe(true);
    const plain = (await getJson(authorizationServerMetadataUrlOf(`${castellan.baseUrl}/t/plain`))).body;
    expect(plain.client_id_metadata_document_supported ?? false).toBe(false);
  });

  scenario('MCP 2025-11-25 / RFC 7591: registration_endpoint advertised with DCR on and answering, absent with it off', async () => {
    expect(as.registration_endpoint).toBe(`${castellan.issuer}/reg`);
    const plain = (await getJson(authorizationServerMetadataUrlOf(`${castellan.baseUrl}/t/plain`))).body;
    expect(plain).not.toHaveProperty('registration_endpoint');
    // Advertised means usable: an empty registration is refused as client metadata, not 404.
    const response = await fetch(String(as.registration_endpoint), {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: ['ftp://x'] }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error?: string }).error).toMatch(/^invalid_(redirect_uri|client_metadata)$/);
  });

  scenario('JWKS: every key has kty, a unique kid, use=sig and alg, and no private members', async () => {
    const { body, response } = await getJson(String(as.jwks_uri));
    expect(response.headers.get('content-type')).toMatch(/^application\/(jwk-set\+)?json\b/);
    const keys = body.keys as Array<Record<string, unknown>>;
    expect(Array.isArray(keys)).toBe(true);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(typeof key.kty).toBe('string');
      expect(typeof key.kid).toBe('string');
      expect(key.use).toBe('sig');
      expect(typeof key.alg).toBe('string');
      for (const member of PRIVATE_JWK_MEMBERS) expect(key, `key ${String(key.kid)} has no ${member}`).not.toHaveProperty(member);
    }
    expect(new Set(keys.map((k) => k.kid)).size).toBe(keys.length);
    // Every advertised id_token algorithm has a key to verify it with.
    for (const alg of expectStringArray(as, 'id_token_signing_alg_values_supported')) {
      expect(keys.some((k) => k.alg === alg), `a key for ${alg}`).toBe(true);
    }
  });
});
