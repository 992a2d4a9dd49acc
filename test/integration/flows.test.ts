import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, STORAGE_KINDS, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, newBrowser, postToken, runCodeFlow, introspect as introspectAt } from '../support/oauth.ts';

const MCP_RESOURCE = 'http://localhost:3001/mcp';
const OPAQUE_RESOURCE = 'http://localhost:3002/api';
const REDIRECT = 'http://127.0.0.1:53682/callback';

const introspect = (castellan: TestCastellan, token: string) =>
  introspectAt(castellan.issuer, basicAuth('demo-service', castellan.clientSecret), token);

describe.each(STORAGE_KINDS)('flows on the %s store', (kind) => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan(kind, `flows_${kind}`);
    // No retry grace here: a replayed refresh token must count as reuse at once
    // (the grace has its own tests in refresh-retry.test.ts).
    await castellan.running.storage.tenants.update('demo', {
      settings: { ...DEMO_TENANT_SETTINGS, ttl: { refreshRetryGrace: 0 } },
    });
    castellan.running.tenants.invalidate('demo');
  });
  afterAll(async () => castellan?.stop());

  const service = () => basicAuth('demo-service', castellan.clientSecret);

  it('issues an RFC 9068 JWT access token for a configured resource with client_secret_basic', async () => {
    const { status, body } = await postToken(
      castellan.issuer,
      { grant_type: 'client_credentials', resource: MCP_RESOURCE, scope: 'notes:read' },
      service(),
    );
    expect(status).toBe(200);
    expect(body).toMatchObject({ token_type: 'Bearer', scope: 'notes:read' });
    const jwks = createRemoteJWKSet(new URL(`${castellan.issuer}/jwks`));
    const { payload, protectedHeader } = await jwtVerify(String(body.access_token), jwks, {
      issuer: castellan.issuer,
      audience: MCP_RESOURCE,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    expect(protectedHeader.alg).toBe('ES256');
    for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'scope']) {
      expect(payload, claim).toHaveProperty(claim);
    }
    expect(payload.client_id).toBe('demo-service');
    expect(payload.sub).toBe('demo-service');
    expect(payload.scope).toBe('notes:read');
  });

  it('never grants scopes a resource does not offer', async () => {
    const { status, body } = await postToken(
      castellan.issuer,
      { grant_type: 'client_credentials', resource: MCP_RESOURCE, scope: 'reports:read' },
      service(),
    );
    // oidc-provider drops scopes outside the resource's; nothing is left to grant.
    if (status === 200) expect(body.scope ?? '').not.toContain('reports:read');
    else expect(body.error).toBe('invalid_scope');
  });

  it('refuses an unknown resource with invalid_target', async () => {
    const { status, body } = await postToken(
      castellan.issuer,
      { grant_type: 'client_credentials', resource: 'https://attacker.example/api' },
      service(),
    );
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_target');
  });

  it('issues an opaque token without a resource; introspection sees revocation at once', async () => {
    const { status, body } = await postToken(castellan.issuer, { grant_type: 'client_credentials' }, service());
    expect(status).toBe(200);
    const token = String(body.access_token);
    expect(token.split('.')).toHaveLength(1);
    expect(await introspect(castellan, token)).toMatchObject({ active: true, client_id: 'demo-service', iss: castellan.issuer });

    const revoked = await fetch(`${castellan.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: service() },
      body: new URLSearchParams({ token }).toString(),
    });
    expect(revoked.status).toBe(200);
    expect(await introspect(castellan, token)).toEqual({ active: false });
  });

  it('issues opaque tokens for a resource configured as opaque, and revokes them', async () => {
    const { body } = await postToken(
      castellan.issuer,
      { grant_type: 'client_credentials', resource: OPAQUE_RESOURCE, scope: 'reports:read' },
      service(),
    );
    const token = String(body.access_token);
    expect(token.split('.')).toHaveLength(1);
    expect(await introspect(castellan, token)).toMatchObject({ active: true, aud: OPAQUE_RESOURCE, scope: 'reports:read' });
    await fetch(`${castellan.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: service() },
      body: new URLSearchParams({ token }).toString(),
    });
    expect(await introspect(castellan, token)).toEqual({ active: false });
  });

  it('runs auth code + PKCE for the public client, with rotating refresh tokens', async () => {
    const flow = await runCodeFlow({
      issuer: castellan.issuer,
      clientId: 'demo-agent',
      redirectUri: REDIRECT,
      scope: 'openid offline_access notes:read',
      resource: MCP_RESOURCE,
      login: 'demo',
      password: castellan.userPassword,
      extra: { prompt: 'consent' },
    });
    expect(flow.params.get('state')).toBe(flow.state);
    expect(flow.params.get('iss')).toBe(castellan.issuer);
    const { status, body } = await postToken(castellan.issuer, {
      grant_type: 'authorization_code',
      client_id: 'demo-agent',
      code: flow.code,
      redirect_uri: REDIRECT,
      code_verifier: flow.verifier,
      resource: MCP_RESOURCE,
    });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.refresh_token).toEqual(expect.any(String));
    expect(body.id_token).toEqual(expect.any(String));
    const jwks = createRemoteJWKSet(new URL(`${castellan.issuer}/jwks`));
    const { payload } = await jwtVerify(String(body.access_token), jwks, { issuer: castellan.issuer, audience: MCP_RESOURCE });
    expect(payload.scope).toBe('notes:read');

    const refreshed = await postToken(castellan.issuer, {
      grant_type: 'refresh_token',
      client_id: 'demo-agent',
      refresh_token: String(body.refresh_token),
      resource: MCP_RESOURCE,
    });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect(refreshed.body.refresh_token).not.toBe(body.refresh_token);

    // Replaying the rotated refresh token is reuse: refused, and the whole grant is revoked.
    const replay = await postToken(castellan.issuer, {
      grant_type: 'refresh_token',
      client_id: 'demo-agent',
      refresh_token: String(body.refresh_token),
    });
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    const afterReplay = await postToken(castellan.issuer, {
      grant_type: 'refresh_token',
      client_id: 'demo-agent',
      refresh_token: String(refreshed.body.refresh_token),
    });
    expect(afterReplay.body.error).toBe('invalid_grant');
  });

  it('accepts pushed authorization requests (RFC 9126) from the public client', async () => {
    const flow = await runCodeFlow({
      issuer: castellan.issuer,
      clientId: 'demo-agent',
      redirectUri: REDIRECT,
      scope: 'openid notes:write',
      resource: MCP_RESOURCE,
      login: 'demo',
      password: castellan.userPassword,
      pushed: true,
    });
    const { status, body } = await postToken(castellan.issuer, {
      grant_type: 'authorization_code',
      client_id: 'demo-agent',
      code: flow.code,
      redirect_uri: REDIRECT,
      code_verifier: flow.verifier,
    });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.scope).toBe('notes:write');
  });

  it('refuses a wrong password on the login page and a wrong PKCE verifier at the token endpoint', async () => {
    await expect(runCodeFlow({
      issuer: castellan.issuer,
      clientId: 'demo-agent',
      redirectUri: REDIRECT,
      scope: 'openid',
      login: 'demo',
      password: 'not-the-password',
    })).rejects.toThrow(/expected a redirect, got 400/);
    const flow = await runCodeFlow({
      issuer: castellan.issuer,
      clientId: 'demo-agent',
      redirectUri: REDIRECT,
      scope: 'openid',
      login: 'demo',
      password: castellan.userPassword,
    });
    const { status, body } = await postToken(castellan.issuer, {
      grant_type: 'authorization_code',
      client_id: 'demo-agent',
      code: flow.code,
      redirect_uri: REDIRECT,
      code_verifier: 'x'.repeat(43),
    });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_grant');
  });

  it('serves userinfo for the openid scopes granted, and signs the user out', async () => {
    const browser = newBrowser();
    const flow = await runCodeFlow({
      issuer: castellan.issuer,
      clientId: 'demo-agent',
      redirectUri: REDIRECT,
      scope: 'openid email profile',
      login: 'demo',
      password: castellan.userPassword,
      browser,
    });
    const { body } = await postToken(castellan.issuer, {
      grant_type: 'authorization_code',
      client_id: 'demo-agent',
      code: flow.code,
      redirect_uri: REDIRECT,
      code_verifier: flow.verifier,
    });
    const userinfo = await fetch(`${castellan.issuer}/me`, { headers: { authorization: `Bearer ${String(body.access_token)}` } });
    expect(userinfo.status).toBe(200);
    expect(await userinfo.json()).toMatchObject({ sub: expect.any(String), email: 'demo@example.com', name: 'Demo User' });

    // A signed-in browser is not asked for a password again (a wrong one would fail). Native
    // clients still get the consent step every time (oidc-provider, RFC 8252 §8.6).
    const again = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid',
      login: 'demo', password: 'not-the-password', browser,
    });
    expect(again.code).toEqual(expect.any(String));

    const page = await browser.get(`${castellan.issuer}/session/end`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Sign out of');
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    expect(xsrf).toBeDefined();
    const confirm = await browser.postForm(`${castellan.issuer}/session/end/confirm`, { xsrf: xsrf ?? '', logout: 'yes' });
    expect(confirm.status).toBe(303);
    const done = await browser.get(new URL(confirm.headers.get('location') ?? '', castellan.issuer).href);
    expect(await done.text()).toContain('Signed out');

    // Signed out: the login page is back, so the wrong password now fails.
    await expect(runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid',
      login: 'demo', password: 'not-the-password', browser,
    })).rejects.toThrow(/expected a redirect, got 400/);
  });

  it('gives exactly one token response for 50 concurrent redemptions of one code', async () => {
    const flow = await runCodeFlow({
      issuer: castellan.issuer,
      clientId: 'demo-agent',
      redirectUri: REDIRECT,
      scope: 'openid',
      login: 'demo',
      password: castellan.userPassword,
      extra: { prompt: 'consent' },
    });
    const attempts = await Promise.all(
      Array.from({ length: 50 }, () => postToken(castellan.issuer, {
        grant_type: 'authorization_code',
        client_id: 'demo-agent',
        code: flow.code,
        redirect_uri: REDIRECT,
        code_verifier: flow.verifier,
      })),
    );
    const ok = attempts.filter((a) => a.status === 200);
    const refused = attempts.filter((a) => a.status === 400 && a.body.error === 'invalid_grant');
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(49);
  });
});
