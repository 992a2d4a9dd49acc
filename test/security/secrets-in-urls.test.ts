import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, codeRedemption, postToken, runCodeFlow } from '../support/oauth.ts';

/*
 * Credential leakage through URLs (RFC 9700 §4.2 Referer headers, §4.3 browser history): in a
 * whole sign-in, code redemption, refresh, introspection and revocation, the only credential
 * in any URL the browser or the client uses, or in any Location header, is the protocol's own
 * authorization code on its way to the redirect_uri. The password, the client secret, the PKCE
 * verifier and every token stay in bodies and headers.
 */
const REDIRECT = 'http://127.0.0.1:53682/callback';

describe('secrets in URLs (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  const urls: string[] = [];
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_secrets_in_urls');
  });
  afterEach(() => vi.restoreAllMocks());
  afterAll(async () => castellan?.stop());

  it('carries no password, client secret, verifier or token in a URL or Location; the code only to the redirect_uri', async () => {
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
      urls.push(input instanceof Request ? input.url : String(input));
      const response = await realFetch(input, init);
      const location = response.headers.get('location');
      if (location) urls.push(location);
      return response;
    });

    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access',
      login: 'demo', password: castellan.userPassword, extra: { prompt: 'consent' },
    });
    const tokens = await postToken(castellan.issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    for (const name of ['access_token', 'refresh_token', 'id_token']) expect(tokens.body[name], name).toEqual(expect.any(String));
    const refreshed = await postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: 'demo-agent', refresh_token: String(tokens.body.refresh_token) });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    const service = basicAuth('demo-service', castellan.clientSecret);
    const m2m = await postToken(castellan.issuer, { grant_type: 'client_credentials' }, service);
    expect(m2m.status).toBe(200);
    for (const path of ['/token/introspection', '/token/revocation']) {
      const response = await fetch(`${castellan.issuer}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: service },
        body: new URLSearchParams({ token: String(m2m.body.access_token) }).toString(),
      });
      expect(response.status).toBe(200);
    }
    const userinfo = await fetch(`${castellan.issuer}/me`, { headers: { authorization: `Bearer ${String(refreshed.body.access_token)}` } });
    expect(userinfo.status).toBe(200);
    vi.restoreAllMocks();

    const secrets: Record<string, string> = {
      password: castellan.userPassword,
      'client secret': castellan.clientSecret,
      'code verifier': flow.verifier,
      'access token': String(tokens.body.access_token),
      'refresh token': String(tokens.body.refresh_token),
      'id token': String(tokens.body.id_token),
      'rotated refresh token': String(refreshed.body.refresh_token),
      'client_credentials token': String(m2m.body.access_token),
    };
    expect(urls.length).toBeGreaterThan(5);
    const decoded = urls.map((url) => `${url} ${decodeURIComponent(url)}`);
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret.length, name).toBeGreaterThan(8);
      expect(decoded.filter((url) => url.includes(secret)), name).toEqual([]);
    }
    // The code travels in exactly the URLs that go to the client's redirect_uri.
    const withCode = urls.filter((url) => url.includes(flow.code));
    expect(withCode.length).toBeGreaterThan(0);
    for (const url of withCode) expect(url.startsWith(`${REDIRECT}?`), url).toBe(true);
  });
});
