import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { loadPolicyHooks, PolicyModuleError } from '../../src/policy/load-policy.ts';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { newBrowser, pkcePair, postToken, runCodeFlow } from '../support/oauth.ts';

const LOOPBACK = 'http://127.0.0.1:41234/callback';

async function register(issuer: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

const publicClient = {
  client_name: 'Notes agent',
  redirect_uris: [LOOPBACK],
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  software_id: 'notes-agent',
  software_version: '1.2.3',
  logo_uri: 'https://agent.example/logo.png',
  client_uri: 'https://agent.example',
  contacts: ['ops@agent.example'],
};

describe('RFC 7591/7592 registration on FerretDB + Redis', () => {
  let castellan: TestCastellan;
  let publisherKey: CryptoKey;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'registration');
    // This file registers far more than the demo tenant's 20 clients per address and hour.
    await castellan.running.storage.tenants.update('demo', {
      settings: { ...DEMO_TENANT_SETTINGS, registration: { mode: 'open', limits: { perIpPerHour: 1000 } } },
    });
    castellan.running.tenants.invalidate('demo');
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    publisherKey = privateKey;
    const { tenants } = castellan.running.storage;
    await tenants.create({ id: 'closed', displayName: 'Closed' });
    await tenants.create({ id: 'iat', displayName: 'IAT', settings: { registration: { mode: 'initial-access-token' } } });
    await tenants.create({
      id: 'statements',
      displayName: 'Statements',
      settings: {
        registration: {
          mode: 'software-statement',
          trustedPublishers: [{ issuer: 'https://publisher.example', jwks: { keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256' }] } }],
        },
      },
    });
  });
  afterAll(async () => castellan?.stop());

  it('registers a public MCP client, keeps its metadata, ignores unknown members, and lets it run the code flow', async () => {
    const { status, body } = await register(castellan.issuer, { ...publicClient, x_unknown_member: 42 });
    expect(status, JSON.stringify(body)).toBe(201);
    expect(body).toMatchObject({
      client_name: 'Notes agent',
      software_id: 'notes-agent',
      software_version: '1.2.3',
      logo_uri: 'https://agent.example/logo.png',
      contacts: ['ops@agent.example'],
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      registration_access_token: expect.any(String),
      registration_client_uri: expect.stringContaining(`${castellan.issuer}/reg/`),
    });
    expect(body).not.toHaveProperty('x_unknown_member');
    expect(body).not.toHaveProperty('client_secret');

    const redirect = 'http://127.0.0.1:50999/callback'; // another port: RFC 8252 loopback
    const flow = await runCodeFlow({
      issuer: castellan.issuer,
      clientId: String(body.client_id),
      redirectUri: redirect,
      scope: 'openid notes:read',
      resource: 'http://localhost:3001/mcp',
      login: 'demo',
      password: castellan.userPassword,
    });
    const token = await postToken(castellan.issuer, {
      grant_type: 'authorization_code',
      client_id: String(body.client_id),
      code: flow.code,
      redirect_uri: redirect,
      code_verifier: flow.verifier,
    });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
  });

  it('shows the registered name and https logo on the consent page, escaped', async () => {
    const { body } = await register(castellan.issuer, { ...publicClient, client_name: 'Notes <b>agent</b>' });
    const browser = newBrowser();
    const query = new URLSearchParams({
      client_id: String(body.client_id), response_type: 'code', redirect_uri: LOOPBACK, scope: 'openid',
      code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
    });
    let response = await browser.get(`${castellan.issuer}/auth?${query}`);
    const follow = async (r: Response) => browser.get(new URL(r.headers.get('location') ?? '', castellan.issuer).href);
    response = await follow(response); // login page
    const login = new URL(response.url || castellan.issuer);
    expect(await response.text()).toContain('name="password"');
    const interaction = /\/interaction\/[^/?"]+/.exec(login.pathname)?.[0] ?? '';
    response = await browser.postForm(`${castellan.baseUrl}/t/demo${interaction}/login`, { login: 'demo', password: castellan.userPassword });
    response = await follow(response); // resume
    response = await follow(response); // consent page
    const html = await response.text();
    expect(html).toContain('Notes &lt;b&gt;agent&lt;/b&gt;');
    expect(html).not.toContain('<b>agent</b>');
    expect(html).toContain('<img src="https://agent.example/logo.png"');
  });

  it('reads, updates (rotating the registration access token) and deletes a client (RFC 7592)', async () => {
    // A name of its own: identical public metadata would be an idempotent re-registration.
    const created = (await register(castellan.issuer, { ...publicClient, client_name: 'Managed agent' })).body;
    const uri = String(created.registration_client_uri);
    const auth = (token: unknown) => ({ authorization: `Bearer ${String(token)}` });

    const read = await fetch(uri, { headers: auth(created.registration_access_token) });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ client_id: created.client_id, client_name: 'Managed agent' });

    const update = await fetch(uri, {
      method: 'PUT',
      headers: { ...auth(created.registration_access_token), 'content-type': 'application/json' },
      body: JSON.stringify({ ...publicClient, client_id: created.client_id, client_name: 'Renamed agent' }),
    });
    const updated = (await update.json()) as Record<string, unknown>;
    expect(update.status, JSON.stringify(updated)).toBe(200);
    expect(updated.client_name).toBe('Renamed agent');
    expect(updated.registration_access_token).not.toBe(created.registration_access_token);

    const stale = await fetch(uri, { headers: auth(created.registration_access_token) });
    expect(stale.status).toBe(401);
    expect((await stale.json()) as Record<string, unknown>).toMatchObject({ error: 'invalid_token' });

    const badUpdate = await fetch(uri, {
      method: 'PUT',
      headers: { ...auth(updated.registration_access_token), 'content-type': 'application/json' },
      body: JSON.stringify({ ...publicClient, client_id: created.client_id, redirect_uris: ['http://evil.example/cb'] }),
    });
    expect(badUpdate.status).toBe(400);
    expect(((await badUpdate.json()) as Record<string, unknown>).error).toBe('invalid_redirect_uri');

    const removed = await fetch(uri, { method: 'DELETE', headers: auth(updated.registration_access_token) });
    expect(removed.status).toBe(204);
    expect((await fetch(uri, { headers: auth(updated.registration_access_token) })).status).toBe(401);
  });

  it.each([
    [{ redirect_uris: ['http://evil.example/cb'] }, 'invalid_redirect_uri'],
    [{ redirect_uris: ['https://ok.example/cb#fragment'] }, 'invalid_redirect_uri'],
    [{ redirect_uris: ['https://*.example.com/cb'] }, 'invalid_redirect_uri'],
    [{ redirect_uris: ['javascript:alert(1)'] }, 'invalid_redirect_uri'],
    [{ redirect_uris: [] }, 'invalid_redirect_uri'],
    [{ redirect_uris: ['https://web.example/cb', LOOPBACK], application_type: 'web' }, 'invalid_redirect_uri'],
    [{ grant_types: ['client_credentials'], token_endpoint_auth_method: 'none' }, 'invalid_client_metadata'],
    [{ grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata'],
    [{ redirect_uris: [LOOPBACK], response_types: [] }, 'invalid_client_metadata'],
    [{ redirect_uris: [LOOPBACK], token_endpoint_auth_method: 'client_secret_jwt' }, 'invalid_client_metadata'],
    [{ redirect_uris: [LOOPBACK], scope: 'openid admin:everything' }, 'invalid_client_metadata'],
    [{ redirect_uris: [LOOPBACK], logo_uri: 'http://insecure.example/logo.png' }, 'invalid_client_metadata'],
    [{ redirect_uris: [LOOPBACK], software_statement: 'not-a-jwt' }, 'invalid_software_statement'],
  ])('refuses %j with %s', async (metadata, error) => {
    const { status, body } = await register(castellan.issuer, metadata);
    expect(status).toBe(400);
    expect(body).toMatchObject({ error, error_description: expect.any(String) });
  });

  it('accepts private-use schemes and https for native and web clients', async () => {
    expect((await register(castellan.issuer, { redirect_uris: ['com.example.agent:/callback'], token_endpoint_auth_method: 'none' })).status).toBe(201);
    const web = await register(castellan.issuer, { redirect_uris: ['https://app.example/cb'] });
    expect(web.status, JSON.stringify(web.body)).toBe(201);
    expect(web.body).toMatchObject({ application_type: 'web', token_endpoint_auth_method: 'client_secret_basic', client_secret: expect.any(String) });
  });

  it('refuses bodies that are not a JSON object', async () => {
    const text = await fetch(`${castellan.issuer}/reg`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
    expect(text.status).toBe(415);
    const array = await register(castellan.issuer, [publicClient]);
    expect(array.status).toBe(400);
    const broken = await fetch(`${castellan.issuer}/reg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":' });
    expect(broken.status).toBe(400);
    expect(((await broken.json()) as Record<string, unknown>).error).toBe('invalid_request');
  });

  it('offers CORS on the registration endpoint but not on the authorization endpoint', async () => {
    const preflight = await fetch(`${castellan.issuer}/reg`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    const created = await register(castellan.issuer, publicClient, { origin: 'http://localhost:6274' });
    expect(created.headers.get('access-control-allow-origin')).toBe('*');
    const refused = await register(castellan.issuer, { redirect_uris: ['http://evil.example'] }, { origin: 'http://localhost:6274' });
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    const auth = await fetch(`${castellan.issuer}/auth?client_id=demo-agent`, { headers: { origin: 'http://localhost:6274' }, redirect: 'manual' });
    expect(auth.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('has no registration on a closed tenant', async () => {
    const closed = `${castellan.baseUrl}/t/closed`;
    const metadata = (await (await fetch(`${castellan.baseUrl}/.well-known/oauth-authorization-server/t/closed`)).json()) as Record<string, unknown>;
    expect(metadata).not.toHaveProperty('registration_endpoint');
    const { status, body } = await register(closed, publicClient);
    expect(status).toBe(404);
    expect(body.error).toBe('invalid_request');
  });

  it('requires an initial access token where the tenant says so (RFC 7591 §3.1)', async () => {
    const iat = `${castellan.baseUrl}/t/iat`;
    const missing = await register(iat, publicClient);
    expect(missing.status).toBe(401);
    expect(missing.body.error).toBe('invalid_token');
    const runtime = await castellan.running.tenants.get('iat');
    const token = await new runtime.provider.InitialAccessToken({}).save();
    const ok = await register(iat, publicClient, { authorization: `Bearer ${token}` });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
  });

  it('requires a software statement from a trusted publisher where the tenant says so; its claims win (RFC 7591 §2.3)', async () => {
    const statements = `${castellan.baseUrl}/t/statements`;
    const missing = await register(statements, publicClient);
    expect(missing.body.error).toBe('invalid_software_statement');

    const statement = await new SignJWT({ client_name: 'Approved agent', software_id: 'approved', redirect_uris: [LOOPBACK] })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('https://publisher.example')
      .setIssuedAt()
      .sign(publisherKey);
    const ok = await register(statements, { ...publicClient, client_name: 'Self-declared name', software_statement: statement });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expect(ok.body).toMatchObject({ client_name: 'Approved agent', software_id: 'approved' });

    const stranger = await new SignJWT({ client_name: 'x' }).setProtectedHeader({ alg: 'ES256' }).setIssuer('https://stranger.example').sign(publisherKey);
    expect((await register(statements, { ...publicClient, software_statement: stranger })).body.error).toBe('unapproved_software_statement');

    const { privateKey: forger } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ client_name: 'x' }).setProtectedHeader({ alg: 'ES256' }).setIssuer('https://publisher.example').sign(forger);
    expect((await register(statements, { ...publicClient, software_statement: forged })).body.error).toBe('invalid_software_statement');
  });
});

describe('operator policy modules', () => {
  it('loads hooks from a module and refuses registrations the hook refuses', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'castellan-policy-'));
    const path = join(dir, 'policy.mjs');
    await writeFile(path, `export default {
      async acceptRegistration({ metadata }) {
        return metadata.software_id === 'blocked' ? { accept: false, reason: 'software blocked by policy' } : { accept: true };
      },
    };`);
    const env = { ...(await testEnvironment('memory', 'policy')), CASTELLAN_POLICY_MODULE: path };
    const castellan = await startTestCastellan('memory', 'policy', env);
    try {
      const refused = await register(castellan.issuer, { ...publicClient, software_id: 'blocked' });
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({ error: 'access_denied', error_description: 'software blocked by policy' });
      expect((await register(castellan.issuer, publicClient)).status).toBe(201);
    } finally {
      await castellan.stop();
    }
  });

  it('refuses a module with an unknown hook name or no default export', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'castellan-policy-'));
    const typo = join(dir, 'typo.mjs');
    await writeFile(typo, 'export default { acceptRegistrations() { return { accept: true }; } };');
    await expect(loadPolicyHooks(typo)).rejects.toThrow(PolicyModuleError);
    await expect(loadPolicyHooks(join(dir, 'missing.mjs'))).rejects.toThrow(/cannot load policy module/);
  });
});
