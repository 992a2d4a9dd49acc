import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { runCodeFlow } from '../support/oauth.ts';
import { createOtherTenant } from '../resource-server/support.ts';

/*
 * A user's access token of one tenant at another tenant's userinfo endpoint (RFC 9700 §4.4:
 * each tenant is its own issuer; OIDC Core §5.3.3): tenant `other` must treat it as unknown
 * (401 invalid_token, RFC 6750 §3.1) and release no claim, even where a client of the same id
 * exists there. The token still works at its own tenant, so the refusal is about the tenant.
 */
const REDIRECT = 'http://127.0.0.1/callback';

describe("a user's access token at another tenant's userinfo (FerretDB + Redis)", () => {
  let castellan: TestCastellan;
  let otherIssuer = '';
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_xt_userinfo');
    otherIssuer = (await createOtherTenant(castellan)).issuer;
    // The same public client id at tenant other, with the same redirect URI.
    await castellan.running.storage.modelStores('other').durable.upsert('Client', 'demo-agent', {
      client_id: 'demo-agent', grant_types: ['authorization_code'], response_types: ['code'],
      redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', application_type: 'native',
    });
    castellan.running.tenants.invalidate('other');
  });
  afterAll(async () => castellan?.stop());

  const userinfo = (issuer: string, token: string, how: 'header' | 'body') =>
    how === 'header'
      ? fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${token}` } })
      : fetch(`${issuer}/me`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ access_token: token }).toString(),
      });

  it('answers 401 invalid_token at tenant other and releases no claim; the token still works at demo', async () => {
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid profile email',
      login: 'demo', password: castellan.userPassword,
    });
    const response = await fetch(`${castellan.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code', code: flow.code, redirect_uri: REDIRECT, code_verifier: flow.verifier, client_id: 'demo-agent',
      }).toString(),
    });
    const tokens = (await response.json()) as { access_token?: string };
    expect(response.status, JSON.stringify(tokens)).toBe(200);
    const token = String(tokens.access_token);

    const own = await userinfo(castellan.issuer, token, 'header');
    expect(own.status).toBe(200);
    const claims = (await own.json()) as Record<string, unknown>;
    expect(claims.sub).toEqual(expect.any(String));

    for (const how of ['header', 'body'] as const) {
      const foreign = await userinfo(otherIssuer, token, how);
      const text = await foreign.text();
      expect(foreign.status, `${how}: ${text}`).toBe(401);
      expect(JSON.parse(text)).toMatchObject({ error: 'invalid_token' });
      expect(foreign.headers.get('www-authenticate') ?? '').toMatch(/^Bearer .*error="invalid_token"/);
      expect(text).not.toContain(String(claims.sub));
    }
    // Nothing done at tenant other touched it.
    expect((await userinfo(castellan.issuer, token, 'header')).status).toBe(200);
  });
});
