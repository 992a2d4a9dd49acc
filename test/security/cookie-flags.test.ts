import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { pkcePair } from '../support/oauth.ts';

/*
 * Cookie flags of the browser flows (RFC 6265bis §4.1.2.5-§4.1.2.7; RFC 9700 §4.7 CSRF, MCP
 * "Session Hijacking"): every cookie HttpOnly and SameSite, scoped to its tenant's path, and
 * Secure whenever the public base URL is https. Castellan behind a TLS-terminating proxy is
 * started with an https CASTELLAN_BASE_URL and reached over plain http on its port, as the
 * proxy would reach it.
 */
const REDIRECT = 'http://127.0.0.1:53682/callback';

/** The Set-Cookie lines of the first steps of a browser's visit: /auth, its interaction page, /device. */
async function browserCookies(castellan: TestCastellan, direct: string): Promise<string[]> {
  const query = new URLSearchParams({
    client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: 'st',
    code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
  });
  const auth = await fetch(`${direct}/t/demo/auth?${query}`, { redirect: 'manual' });
  expect(auth.status).toBe(303);
  const cookies = auth.headers.getSetCookie();
  const location = new URL(auth.headers.get('location') ?? '', castellan.baseUrl);
  const page = await fetch(`${direct}${location.pathname}`, {
    headers: { cookie: cookies.map((line) => line.split(';')[0]).join('; '), accept: 'text/html' },
  });
  expect(page.status).toBe(200);
  const device = await fetch(`${direct}/t/demo/device`);
  expect(device.status).toBe(200);
  return [...cookies, ...page.headers.getSetCookie(), ...device.headers.getSetCookie()];
}

function expectFlags(cookies: string[], secure: boolean): void {
  // The interaction cookies, their resume twins and the device page's session.
  expect(cookies.some((line) => line.startsWith('_interaction='))).toBe(true);
  expect(cookies.some((line) => line.startsWith('_interaction_resume='))).toBe(true);
  expect(cookies.some((line) => line.startsWith('_session='))).toBe(true);
  for (const line of cookies) {
    const attributes = line.split(';').slice(1).map((part) => part.trim().toLowerCase());
    expect(attributes, line).toContain('httponly');
    expect(attributes.some((a) => /^samesite=(lax|strict)$/.test(a)), line).toBe(true);
    expect(attributes.some((a) => a.startsWith('path=/t/demo')), line).toBe(true);
    expect(attributes.includes('secure'), line).toBe(secure);
  }
}

describe('cookie flags behind https (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let direct: string;
  beforeAll(async () => {
    const env = await testEnvironment('mongo+redis', 'security_cookies_https');
    env.CASTELLAN_BASE_URL = `https://localhost:${env.PORT}`;
    castellan = await startTestCastellan('mongo+redis', 'security_cookies_https', env);
    direct = `http://127.0.0.1:${env.PORT}`;
  });
  afterAll(async () => castellan?.stop());

  it('sets every cookie HttpOnly, SameSite, Secure and under the tenant path', async () => {
    expectFlags(await browserCookies(castellan, direct), true);
  });

  it('ignores a client\'s X-Forwarded-Proto: http, so cookies stay Secure', async () => {
    const auth = await fetch(`${direct}/t/demo/device`, { headers: { 'x-forwarded-proto': 'http' } });
    const cookies = auth.headers.getSetCookie();
    expect(cookies.length).toBeGreaterThan(0);
    for (const line of cookies) expect(line.toLowerCase(), line).toContain('; secure');
  });
});

describe('cookie flags over plain http (local development)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_cookies_http');
  });
  afterAll(async () => castellan?.stop());

  it('sets every cookie HttpOnly, SameSite and under the tenant path, without Secure (a browser would drop it on http)', async () => {
    expectFlags(await browserCookies(castellan, castellan.baseUrl), false);
  });
});
