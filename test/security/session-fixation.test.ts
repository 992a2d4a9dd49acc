import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { followAuthorization, pkcePair, type Browser } from '../support/oauth.ts';

/*
 * Session fixation and riding (MCP Security Best Practices "Session Hijacking"; RFC 9700 §4.7
 * (CSRF/session), OWASP session fixation): an attacker who plants a session cookie in a
 * victim's browser before the victim signs in must not end up holding the victim's session.
 * The sign-in gives the browser a new session id, and the planted one stays anonymous.
 * (Session cookies per tenant path: integration/tenants.test.ts.)
 */
const REDIRECT = 'https://app.example/callback';
/** A web client: oidc-provider answers prompt=none of native clients with interaction_required whatever the session. */
const CLIENT = 'fixation-web';

/**
 * A browser for one tenant: a cookie jar by name (every cookie here is under /t/demo) that the
 * test can plant cookies in, sending the CSRF token of the last page like newBrowser().
 */
function plantableBrowser(): { browser: Browser; jar: Map<string, string>; setCookies: string[] } {
  const jar = new Map<string, string>();
  const setCookies: string[] = [];
  let csrf: string | undefined;
  const send = async (url: string, init: RequestInit) => {
    const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
    const response = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, cookie } });
    for (const line of response.headers.getSetCookie()) {
      setCookies.push(line);
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) jar.delete(name);
      else jar.set(name, value);
    }
    if (response.headers.get('content-type')?.includes('text/html')) {
      csrf = /name="csrf" value="([^"]+)"/.exec(await response.clone().text())?.[1] ?? csrf;
    }
    return response;
  };
  return {
    jar,
    setCookies,
    browser: {
      get: (url) => send(url, { method: 'GET', headers: { accept: 'text/html' } }),
      postForm: (url, form) => send(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
        body: new URLSearchParams({ ...(csrf !== undefined ? { csrf } : {}), ...form }).toString(),
      }),
    },
  };
}

const sessionCookie = (jar: Map<string, string>) => `_session=${jar.get('_session') ?? ''}; _session.sig=${jar.get('_session.sig') ?? ''}`;

describe('session fixation (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_session_fixation');
    await castellan.running.storage.modelStores('demo').durable.upsert('Client', CLIENT, {
      client_id: CLIENT, application_type: 'web', token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [REDIRECT],
    });
  });
  afterAll(async () => castellan?.stop());

  /** /auth with prompt=none for the web client, sending only `cookie`: where it sends the browser back to. */
  async function silentAuthorization(issuer: string, cookie: string): Promise<URLSearchParams> {
    const query = new URLSearchParams({
      client_id: CLIENT, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', prompt: 'none', state: 'st',
      code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
    });
    let url = `${issuer}/auth?${query}`;
    for (let i = 0; i < 5; i += 1) {
      const response = await fetch(url, { redirect: 'manual', headers: { cookie, accept: 'text/html' } });
      const location = response.headers.get('location');
      expect(location, `${response.status} at ${url}`).not.toBeNull();
      url = new URL(location ?? '', url).href;
      if (url.startsWith(REDIRECT)) return new URL(url).searchParams;
    }
    throw new Error('no answer to the client');
  }

  it('gives the browser a new session at sign-in; the planted one stays anonymous', async () => {
    // The attacker gets a session cookie of its own (the device page saves an anonymous session)...
    const attacker = plantableBrowser();
    expect((await attacker.browser.get(`${castellan.issuer}/device`)).status).toBe(200);
    const planted = attacker.jar.get('_session') ?? '';
    expect(planted).not.toBe('');
    expect(attacker.jar.get('_session.sig')).toEqual(expect.any(String));
    // ...and plants it (with its signature) in the victim's browser, who then signs in.
    const victim = plantableBrowser();
    victim.jar.set('_session', planted);
    victim.jar.set('_session.sig', attacker.jar.get('_session.sig') ?? '');
    const query = new URLSearchParams({
      client_id: CLIENT, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: 'v',
      code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
    });
    const params = await followAuthorization(victim.browser, `${castellan.issuer}/auth?${query}`, REDIRECT, 'demo', castellan.userPassword);
    expect(params.get('code')).toEqual(expect.any(String));
    // The sign-in set a new session id in the victim's browser.
    expect(victim.setCookies.some((line) => line.startsWith('_session='))).toBe(true);
    const signedIn = victim.jar.get('_session') ?? '';
    expect(signedIn).not.toBe('');
    expect(signedIn).not.toBe(planted);

    // The victim's session is signed in: a silent authorization gets a code.
    expect((await silentAuthorization(castellan.issuer, sessionCookie(victim.jar))).get('code')).toEqual(expect.any(String));
    // The planted session holds nobody.
    expect((await silentAuthorization(castellan.issuer, sessionCookie(attacker.jar))).get('error')).toBe('login_required');
  });
});
