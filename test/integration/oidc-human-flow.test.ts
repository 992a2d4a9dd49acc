import { randomBytes } from 'node:crypto';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, CookieJar, newBrowser, pkcePair, postToken, type Browser, introspect as introspectAt } from '../support/oauth.ts';

/*
 * The OpenID Connect flow a person goes through, at the HTTP level, on FerretDB + Redis:
 * id_token (nonce, signature, aud/iss/exp/auth_time), userinfo per scope, RP-initiated
 * logout, PKCE and redirect_uri rules, state and iss (RFC 9207) in every authorization
 * response, the prompt / max_age / login_hint parameters, denial, refresh-token reuse, and
 * every error path of the interaction pages (standard error JSON, never a 500).
 */

const AGENT = 'demo-agent';
const AGENT_REDIRECT = 'http://127.0.0.1:53710/callback';
/** A confidential web client created for these tests: exact https redirect and logout URIs. */
const WEB = 'human-flow-web';
const WEB_SECRET = `web-secret-${'x'.repeat(32)}`;
const WEB_REDIRECT = 'https://app.example.com/callback';
const WEB_LOGOUT = 'https://app.example.com/signed-out';

type AuthStep =
  | { kind: 'page'; url: string; status: number; html: string }
  | { kind: 'redirect'; params: URLSearchParams; url: string };

interface AuthRequest {
  url: string;
  verifier: string;
  state: string;
  nonce: string;
}

/** A browser that can also ask as an API client would (Accept: application/json), cookies shared. */
interface DualClient extends Browser {
  getJson(url: string): Promise<Response>;
  postFormJson(url: string, form: Record<string, string>): Promise<Response>;
}

/** Like newBrowser() (cookie jar, the last page's CSRF token on every form post), either Accept. */
function newDualClient(): DualClient {
  const jar = new CookieJar();
  let csrf: string | undefined;
  const send = async (url: string, accept: string, form?: Record<string, string>) => {
    const response = await fetch(url, {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      headers: { accept, cookie: jar.header(), ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      ...(form ? { body: new URLSearchParams({ ...(csrf !== undefined ? { csrf } : {}), ...form }).toString() } : {}),
    });
    jar.store(response);
    if (response.headers.get('content-type')?.includes('text/html')) {
      csrf = /name="csrf" value="([^"]+)"/.exec(await response.clone().text())?.[1] ?? csrf;
    }
    return response;
  };
  return {
    get: (url) => send(url, 'text/html'),
    postForm: (url, form) => send(url, 'text/html', form),
    getJson: (url) => send(url, 'application/json'),
    postFormJson: (url, form) => send(url, 'application/json', form),
  };
}

describe('the human OIDC flow over HTTP (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let jwks: ReturnType<typeof createLocalJWKSet>;

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'oidc_human');
    // No retry grace: a replayed refresh token is reuse at once (the grace has refresh-retry.test.ts).
    await castellan.running.storage.tenants.update('demo', {
      settings: { ...DEMO_TENANT_SETTINGS, ttl: { refreshRetryGrace: 0 } },
    });
    await castellan.running.storage.modelStores('demo').durable.upsert('Client', WEB, {
      client_id: WEB,
      client_secret: WEB_SECRET,
      client_name: 'Human flow web app',
      application_type: 'web',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [WEB_REDIRECT],
      post_logout_redirect_uris: [WEB_LOGOUT],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    castellan.running.tenants.invalidate('demo');
    jwks = createLocalJWKSet((await (await fetch(`${castellan.issuer}/jwks`)).json()) as JSONWebKeySet);
  });
  afterAll(async () => castellan?.stop());

  /** An authorization request with fresh PKCE, state and nonce; `params` override or (undefined) remove. */
  function authRequest(clientId: string, params: Record<string, string | undefined> = {}): AuthRequest {
    const { verifier, challenge } = pkcePair();
    const state = randomBytes(8).toString('hex');
    const nonce = randomBytes(8).toString('hex');
    const query: Record<string, string | undefined> = {
      client_id: clientId,
      response_type: 'code',
      redirect_uri: clientId === WEB ? WEB_REDIRECT : AGENT_REDIRECT,
      scope: 'openid',
      state,
      nonce,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...params,
    };
    const search = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined));
    return { url: `${castellan.issuer}/auth?${search}`, verifier, state, nonce };
  }

  /** Follows redirects until a Castellan page or the client's redirect_uri. */
  async function follow(browser: Browser, start: string, redirectUri: string): Promise<AuthStep> {
    let url = start;
    for (let hop = 0; hop < 10; hop += 1) {
      if (url.startsWith(redirectUri)) return { kind: 'redirect', params: new URL(url).searchParams, url };
      const response = await browser.get(url);
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        url = new URL(location, url).href;
        continue;
      }
      return { kind: 'page', url, status: response.status, html: await response.text() };
    }
    throw new Error('too many redirects');
  }

  /** Posts a form of the current interaction page and follows on. */
  async function submit(browser: Browser, page: AuthStep, action: string, form: Record<string, string>, redirectUri: string): Promise<AuthStep> {
    if (page.kind !== 'page') throw new Error(`expected a page, got a redirect: ${page.url}`);
    const response = await browser.postForm(`${page.url}/${action}`, form);
    const location = response.headers.get('location');
    if (response.status === 303 && location) return follow(browser, new URL(location, page.url).href, redirectUri);
    return { kind: 'page', url: page.url, status: response.status, html: await response.text() };
  }

  const isLoginPage = (step: AuthStep) => step.kind === 'page' && step.status === 200 && step.html.includes('name="password"');
  const isConsentPage = (step: AuthStep) => step.kind === 'page' && step.status === 200 && step.html.includes('Allow access?');

  /** Signs in (and approves, when asked) until the redirect back; returns its parameters. */
  async function signInAndApprove(browser: Browser, request: AuthRequest, redirectUri: string): Promise<URLSearchParams> {
    let step = await follow(browser, request.url, redirectUri);
    if (isLoginPage(step)) step = await submit(browser, step, 'login', { login: 'demo', password: castellan.userPassword }, redirectUri);
    if (isConsentPage(step)) step = await submit(browser, step, 'confirm', {}, redirectUri);
    if (step.kind !== 'redirect') throw new Error(`expected the redirect back, got ${step.status}: ${step.html.slice(0, 200)}`);
    return step.params;
  }

  async function redeem(clientId: string, request: AuthRequest, code: string) {
    const web = clientId === WEB;
    return postToken(castellan.issuer, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: web ? WEB_REDIRECT : AGENT_REDIRECT,
      code_verifier: request.verifier,
      ...(web ? {} : { client_id: AGENT }),
    }, web ? basicAuth(WEB, WEB_SECRET) : undefined);
  }

  /** Runs the whole flow for the web client and returns the token response. */
  async function webTokens(browser: Browser, params: Record<string, string | undefined> = {}): Promise<{ request: AuthRequest; body: Record<string, unknown> }> {
    const request = authRequest(WEB, params);
    const back = await signInAndApprove(browser, request, WEB_REDIRECT);
    const code = back.get('code');
    expect(code, back.toString()).toEqual(expect.any(String));
    const { status, body } = await redeem(WEB, request, code ?? '');
    expect(status, JSON.stringify(body)).toBe(200);
    return { request, body };
  }

  const userinfo = async (accessToken: unknown) => {
    const response = await fetch(`${castellan.issuer}/me`, { headers: { authorization: `Bearer ${String(accessToken)}` } });
    expect(response.status).toBe(200);
    return (await response.json()) as Record<string, unknown>;
  };

  const introspect = (token: unknown) => introspectAt(castellan.issuer, basicAuth('demo-service', castellan.clientSecret), token);

  /** A JSON client's view of an endpoint (oidc-provider answers JSON, not its error page). */
  const getJson = (url: string) => fetch(url, { redirect: 'manual', headers: { accept: 'application/json' } });

  describe('id_token', () => {
    it('carries the nonce sent, verifies against the tenant JWKS, with aud, iss, exp and auth_time', async () => {
      const before = Math.floor(Date.now() / 1000) - 1;
      const { request, body } = await webTokens(newBrowser(), { max_age: '300' });
      const { payload, protectedHeader } = await jwtVerify(String(body.id_token), jwks, { issuer: castellan.issuer, audience: WEB });
      expect(protectedHeader.alg).toBe('RS256');
      expect(payload.nonce).toBe(request.nonce);
      expect(payload.aud).toBe(WEB);
      expect(payload.iss).toBe(castellan.issuer);
      expect(typeof payload.sub).toBe('string');
      expect(payload.exp).toBeGreaterThan(Number(payload.iat));
      expect(Number(payload.auth_time)).toBeGreaterThanOrEqual(before);
      expect(Number(payload.auth_time)).toBeLessThanOrEqual(Number(payload.iat));
    });

    it('has no at_hash in the code flow token response (OIDC Core §3.1.3.6 makes it optional there)', async () => {
      // at_hash binds an access token that travels through the front channel (hybrid and
      // implicit responses); in the code flow both come from the token endpoint over TLS, and
      // oidc-provider leaves it out. An id_token without a nonce is also fine without one.
      const { body } = await webTokens(newBrowser());
      const payload = decodeJwt(String(body.id_token));
      expect(payload).not.toHaveProperty('at_hash');
      expect(payload).not.toHaveProperty('c_hash');
    });
  });

  describe('userinfo and claims per scope', () => {
    it('openid alone releases only sub', async () => {
      const { body } = await webTokens(newBrowser(), { scope: 'openid' });
      const claims = await userinfo(body.access_token);
      expect(Object.keys(claims)).toEqual(['sub']);
      expect(claims.sub).toBe(decodeJwt(String(body.id_token)).sub);
    });

    it('profile adds name; email adds email and email_verified', async () => {
      const profile = await userinfo((await webTokens(newBrowser(), { scope: 'openid profile' })).body.access_token);
      expect(profile).toMatchObject({ sub: expect.any(String), name: 'Demo User' });
      expect(profile).not.toHaveProperty('email');

      const email = await userinfo((await webTokens(newBrowser(), { scope: 'openid email' })).body.access_token);
      expect(email).toEqual({ sub: expect.any(String), email: 'demo@example.com', email_verified: false });

      const both = await userinfo((await webTokens(newBrowser(), { scope: 'openid profile email' })).body.access_token);
      expect(both).toMatchObject({ name: 'Demo User', email: 'demo@example.com', email_verified: false });
    });

    it('refuses userinfo without a token or with a made-up one', async () => {
      expect((await fetch(`${castellan.issuer}/me`)).status).toBe(401);
      const forged = await fetch(`${castellan.issuer}/me`, { headers: { authorization: 'Bearer not-a-token' } });
      expect(forged.status).toBe(401);
      expect(forged.headers.get('www-authenticate')).toContain('invalid_token');
    });
  });
  describe('RP-initiated logout', () => {
    it('sends the user back to a registered post_logout_redirect_uri with state, and really ends the session', async () => {
      const browser = newBrowser();
      const { body } = await webTokens(browser);
      // Signed in: a second authorization needs no password.
      expect((await follow(browser, authRequest(WEB).url, WEB_REDIRECT)).kind).toBe('redirect');

      const state = randomBytes(6).toString('hex');
      const query = new URLSearchParams({ id_token_hint: String(body.id_token), post_logout_redirect_uri: WEB_LOGOUT, state });
      const page = await browser.get(`${castellan.issuer}/session/end?${query}`);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('Sign out of Castellan demo?');
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
      expect(xsrf).not.toBe('');

      const confirm = await browser.postForm(`${castellan.issuer}/session/end/confirm`, { xsrf, logout: 'yes' });
      expect(confirm.status).toBe(303);
      const back = new URL(confirm.headers.get('location') ?? '');
      expect(`${back.origin}${back.pathname}`).toBe(WEB_LOGOUT);
      expect(back.searchParams.get('state')).toBe(state);

      // The session is gone: the next authorization asks for the password again.
      expect(isLoginPage(await follow(browser, authRequest(WEB).url, WEB_REDIRECT))).toBe(true);
    });

    it('refuses an unregistered post_logout_redirect_uri without redirecting anywhere', async () => {
      const browser = newBrowser();
      const { body } = await webTokens(browser);
      for (const uri of ['https://evil.example/signed-out', `${WEB_LOGOUT}/`, `${WEB_LOGOUT}?next=x`, WEB_REDIRECT]) {
        const query = new URLSearchParams({ id_token_hint: String(body.id_token), post_logout_redirect_uri: uri, state: 's' });
        const response = await getJson(`${castellan.issuer}/session/end?${query}`);
        expect(response.status, uri).toBe(400);
        expect(response.headers.get('location')).toBeNull();
        expect(await response.json()).toMatchObject({ error: 'invalid_request', error_description: 'post_logout_redirect_uri not registered' });
        // The browser's page is refused the same way (whatever the error page looks like).
        const inBrowser = await browser.get(`${castellan.issuer}/session/end?${query}`);
        expect(inBrowser.status).toBe(400);
        expect(inBrowser.headers.get('location')).toBeNull();
        expect(await inBrowser.text()).not.toContain('op.logoutForm');
      }
      // A forged id_token_hint is refused too.
      const forged = await getJson(`${castellan.issuer}/session/end?${new URLSearchParams({ id_token_hint: 'e30.e30.e30', post_logout_redirect_uri: WEB_LOGOUT })}`);
      expect(forged.status).toBe(400);
      expect(forged.headers.get('location')).toBeNull();
      // Still signed in: nothing was ended by the refused requests.
      expect((await follow(browser, authRequest(WEB).url, WEB_REDIRECT)).kind).toBe('redirect');
    });

    it('without a post_logout_redirect_uri ends on the signed-out page', async () => {
      const browser = newBrowser();
      const { body } = await webTokens(browser);
      const page = await browser.get(`${castellan.issuer}/session/end?${new URLSearchParams({ id_token_hint: String(body.id_token) })}`);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
      const confirm = await browser.postForm(`${castellan.issuer}/session/end/confirm`, { xsrf, logout: 'yes' });
      expect(confirm.status).toBe(303);
      const done = await browser.get(new URL(confirm.headers.get('location') ?? '', castellan.issuer).href);
      expect(done.status).toBe(200);
      expect(await done.text()).toContain('You are signed out of Castellan demo.');
      expect(isLoginPage(await follow(browser, authRequest(WEB).url, WEB_REDIRECT))).toBe(true);
    });

    it('"No, stay signed in" keeps the session and says so; with an id_token_hint it ends only that client\'s part', async () => {
      const browser = newBrowser();
      const { body } = await webTokens(browser);
      const answerNo = async (query: string) => {
        const page = await browser.get(`${castellan.issuer}/session/end${query}`);
        const xsrf = /name="xsrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
        // The "No" button submits the form without logout=yes.
        const confirm = await browser.postForm(`${castellan.issuer}/session/end/confirm`, { xsrf });
        expect(confirm.status).toBe(303);
        const done = await browser.get(new URL(confirm.headers.get('location') ?? '', castellan.issuer).href);
        expect(done.status).toBe(200);
        return done.text();
      };

      const plain = await answerNo('');
      expect(plain).toContain('You are still signed in to Castellan demo.');
      expect(plain).not.toContain('Signed out');
      expect((await follow(browser, authRequest(WEB).url, WEB_REDIRECT)).kind).toBe('redirect');

      // With the client's id_token_hint: signed out of that client (its grant and tokens
      // revoked, its consent asked again), still signed in to the tenant (no password).
      const hinted = await answerNo(`?${new URLSearchParams({ id_token_hint: String(body.id_token) })}`);
      expect(hinted).toContain('You are signed out of Human flow web app.');
      expect(hinted).toContain('You are still signed in to Castellan demo.');
      expect(await introspect(body.access_token)).toEqual({ active: false });
      expect(isConsentPage(await follow(browser, authRequest(WEB).url, WEB_REDIRECT))).toBe(true);
    });

    it('refuses a confirmation without the logout form\'s xsrf token', async () => {
      const browser = newBrowser();
      await webTokens(browser);
      await browser.get(`${castellan.issuer}/session/end`);
      const forged = await browser.postForm(`${castellan.issuer}/session/end/confirm`, { xsrf: 'forged', logout: 'yes' });
      expect(forged.status).toBe(400);
      expect(forged.headers.get('location')).toBeNull();
      expect((await follow(browser, authRequest(WEB).url, WEB_REDIRECT)).kind).toBe('redirect');
    });
  });

  describe('PKCE', () => {
    /** An error the authorization endpoint returns to the client's redirect_uri. */
    async function refusedAtRedirect(params: Record<string, string | undefined>): Promise<{ request: AuthRequest; back: URLSearchParams }> {
      const request = authRequest(AGENT, params);
      const response = await getJson(request.url);
      expect(response.status).toBe(303);
      const location = new URL(response.headers.get('location') ?? '');
      expect(`${location.origin}${location.pathname}`).toBe(AGENT_REDIRECT);
      return { request, back: location.searchParams };
    }

    it('refuses code_challenge_method=plain at the authorization endpoint, with state and iss', async () => {
      const { request, back } = await refusedAtRedirect({ code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' });
      expect(back.get('error')).toBe('invalid_request');
      expect(back.get('code')).toBeNull();
      expect(back.get('state')).toBe(request.state);
      expect(back.get('iss')).toBe(castellan.issuer);
    });

    it('refuses a request without code_challenge, for the public and the confidential client', async () => {
      const { request, back } = await refusedAtRedirect({ code_challenge: undefined, code_challenge_method: undefined });
      expect(back.get('error')).toBe('invalid_request');
      expect(back.get('error_description')).toMatch(/PKCE/);
      expect(back.get('state')).toBe(request.state);
      expect(back.get('iss')).toBe(castellan.issuer);

      const web = authRequest(WEB, { code_challenge: undefined, code_challenge_method: undefined });
      const response = await getJson(web.url);
      const location = new URL(response.headers.get('location') ?? '');
      expect(`${location.origin}${location.pathname}`).toBe(WEB_REDIRECT);
      expect(location.searchParams.get('error')).toBe('invalid_request');
    });

    // A failed check does not spend the code (oidc-provider checks PKCE before consuming):
    // whoever holds a stolen code cannot guess a 256-bit verifier, and the real client can
    // still redeem its own.
    it('refuses a wrong or missing code_verifier at the token endpoint; the right one still works', async () => {
      const browser = newBrowser();
      const request = authRequest(AGENT, { prompt: 'consent' });
      const code = (await signInAndApprove(browser, request, AGENT_REDIRECT)).get('code') ?? '';
      const base = { grant_type: 'authorization_code', client_id: AGENT, code, redirect_uri: AGENT_REDIRECT };
      const missing = await postToken(castellan.issuer, base);
      expect(missing.status).toBe(400);
      expect(missing.body.error).toMatch(/^invalid_(grant|request)$/);
      const wrong = await postToken(castellan.issuer, { ...base, code_verifier: pkcePair().verifier });
      expect(wrong.status).toBe(400);
      expect(wrong.body.error).toBe('invalid_grant');
      // The challenge itself as verifier (what "plain" would accept) is wrong under S256.
      const challengeAsVerifier = await postToken(castellan.issuer, { ...base, code_verifier: new URL(request.url).searchParams.get('code_challenge') ?? '' });
      expect(challengeAsVerifier.status).toBe(400);
      expect(challengeAsVerifier.body.error).toBe('invalid_grant');
      const right = await postToken(castellan.issuer, { ...base, code_verifier: request.verifier });
      expect(right.status, JSON.stringify(right.body)).toBe(200);
    });
  });

  describe('redirect_uri', () => {
    const misses: Array<[string, string, string]> = [
      [WEB, 'trailing slash', 'https://app.example.com/callback/'],
      [WEB, 'different path', 'https://app.example.com/other'],
      [WEB, 'case in path', 'https://app.example.com/Callback'],
      [WEB, 'extra query', 'https://app.example.com/callback?next=/admin'],
      [WEB, 'different port', 'https://app.example.com:8443/callback'],
      [WEB, 'userinfo', 'https://evil@app.example.com/callback'],
      [WEB, 'userinfo host swap', 'https://app.example.com@evil.example/callback'],
      [WEB, 'encoded character', 'https://app.example.com/%63allback'],
      [WEB, 'encoded slash', 'https://app.example.com/callback%2F..%2Fadmin'],
      [WEB, 'http instead of https', 'http://app.example.com/callback'],
      [WEB, 'fragment', 'https://app.example.com/callback#x'],
      [WEB, 'other host', 'https://evil.example/callback'],
      [AGENT, 'loopback, other path', 'http://127.0.0.1:53710/other'],
      [AGENT, 'loopback, trailing slash', 'http://127.0.0.1:53710/callback/'],
      [AGENT, 'lookalike host', 'http://127.0.0.1.evil.example/callback'],
      [AGENT, 'https on loopback', 'https://127.0.0.1/callback'],
    ];

    it.each(misses)('%s: refuses %s (%s) without redirecting', async (clientId, _name, uri) => {
      const request = authRequest(clientId, { redirect_uri: uri });
      const json = await getJson(request.url);
      expect(json.status).toBe(400);
      expect(json.headers.get('location')).toBeNull();
      expect(await json.json()).toMatchObject({ error: expect.stringMatching(/^invalid_(redirect_uri|request)$/) });
      const page = await newBrowser().get(request.url);
      expect(page.status).toBe(400);
      expect(page.headers.get('location')).toBeNull();
    });

    it('accepts the registered URI exactly, and a loopback one on any port (RFC 8252 §7.3)', async () => {
      const web = await getJson(authRequest(WEB).url);
      expect(web.status).toBe(303);
      expect(new URL(web.headers.get('location') ?? '', castellan.issuer).pathname).toMatch(/\/interaction\//);
      const agent = await getJson(authRequest(AGENT, { redirect_uri: 'http://127.0.0.1:61234/callback' }).url);
      expect(agent.status).toBe(303);
    });

    it('refuses a token request whose redirect_uri differs from the authorization request', async () => {
      const request = authRequest(WEB);
      const code = (await signInAndApprove(newBrowser(), request, WEB_REDIRECT)).get('code') ?? '';
      const { status, body } = await postToken(castellan.issuer, {
        grant_type: 'authorization_code', code, redirect_uri: `${WEB_REDIRECT}/`, code_verifier: request.verifier,
      }, basicAuth(WEB, WEB_SECRET));
      expect(status).toBe(400);
      expect(body.error).toBe('invalid_grant');
    });
  });

  describe('authorization responses: state and iss (RFC 9207)', () => {
    it('returns state and iss with the code', async () => {
      const request = authRequest(WEB);
      const back = await signInAndApprove(newBrowser(), request, WEB_REDIRECT);
      expect(back.get('code')).toEqual(expect.any(String));
      expect(back.get('state')).toBe(request.state);
      expect(back.get('iss')).toBe(castellan.issuer);
      const metadata = (await (await fetch(`${castellan.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      expect(metadata.authorization_response_iss_parameter_supported).toBe(true);
    });

    it('denial on the login page gives access_denied with state and iss', async () => {
      const browser = newBrowser();
      const request = authRequest(WEB);
      const login = await follow(browser, request.url, WEB_REDIRECT);
      expect(isLoginPage(login)).toBe(true);
      const back = await submit(browser, login, 'abort', {}, WEB_REDIRECT);
      expect(back.kind).toBe('redirect');
      if (back.kind !== 'redirect') return;
      expect(back.params.get('error')).toBe('access_denied');
      expect(back.params.get('code')).toBeNull();
      expect(back.params.get('state')).toBe(request.state);
      expect(back.params.get('iss')).toBe(castellan.issuer);
    });

    it('denial on the consent page gives access_denied with state and iss, and grants nothing', async () => {
      const browser = newBrowser();
      const request = authRequest(AGENT, { scope: 'openid email' });
      const login = await follow(browser, request.url, AGENT_REDIRECT);
      const consent = await submit(browser, login, 'login', { login: 'demo', password: castellan.userPassword }, AGENT_REDIRECT);
      expect(isConsentPage(consent)).toBe(true);
      const back = await submit(browser, consent, 'abort', {}, AGENT_REDIRECT);
      if (back.kind !== 'redirect') throw new Error('expected the redirect back');
      expect(back.params.get('error')).toBe('access_denied');
      expect(back.params.get('state')).toBe(request.state);
      expect(back.params.get('iss')).toBe(castellan.issuer);
      // Still signed in, and asked again: the denial stored no consent.
      expect(isConsentPage(await follow(browser, authRequest(AGENT, { scope: 'openid email' }).url, AGENT_REDIRECT))).toBe(true);
    });
  });

  describe('prompt, max_age and login_hint', () => {
    it('prompt=none without a session answers login_required at the redirect_uri, with state and iss', async () => {
      const request = authRequest(WEB, { prompt: 'none' });
      const step = await follow(newBrowser(), request.url, WEB_REDIRECT);
      if (step.kind !== 'redirect') throw new Error(`expected a redirect, got ${step.status}`);
      expect(step.params.get('error')).toBe('login_required');
      expect(step.params.get('state')).toBe(request.state);
      expect(step.params.get('iss')).toBe(castellan.issuer);
    });

    it('prompt=none signed in, without consent for what is asked, answers consent_required', async () => {
      const browser = newBrowser();
      await webTokens(browser, { scope: 'openid' });
      // What was consented to passes silently...
      const silent = await follow(browser, authRequest(WEB, { prompt: 'none' }).url, WEB_REDIRECT);
      if (silent.kind !== 'redirect') throw new Error('expected a redirect');
      expect(silent.params.get('code')).toEqual(expect.any(String));
      // ...a scope never consented to does not.
      const request = authRequest(WEB, { prompt: 'none', scope: 'openid email' });
      const step = await follow(browser, request.url, WEB_REDIRECT);
      if (step.kind !== 'redirect') throw new Error('expected a redirect');
      expect(step.params.get('error')).toBe('consent_required');
      expect(step.params.get('state')).toBe(request.state);
      expect(step.params.get('iss')).toBe(castellan.issuer);
    });

    it('prompt=login asks for the password again, and a wrong one fails', async () => {
      const browser = newBrowser();
      await webTokens(browser);
      const again = await follow(browser, authRequest(WEB, { prompt: 'login' }).url, WEB_REDIRECT);
      expect(isLoginPage(again)).toBe(true);
      const wrong = await submit(browser, again, 'login', { login: 'demo', password: 'not-the-password' }, WEB_REDIRECT);
      expect(wrong.kind === 'page' && wrong.status).toBe(400);
      const right = await submit(browser, again, 'login', { login: 'demo', password: castellan.userPassword }, WEB_REDIRECT);
      expect(right.kind === 'redirect' && right.params.get('code')).toEqual(expect.any(String));
    });

    it('prompt=consent asks again for what was already consented to', async () => {
      const browser = newBrowser();
      await webTokens(browser);
      expect(isConsentPage(await follow(browser, authRequest(WEB, { prompt: 'consent' }).url, WEB_REDIRECT))).toBe(true);
    });

    it('max_age=0 forces a new sign-in, a long max_age does not, and auth_time moves', async () => {
      const browser = newBrowser();
      const first = await webTokens(browser, { max_age: '3600' });
      const firstAuth = Number(decodeJwt(String(first.body.id_token)).auth_time);
      expect((await follow(browser, authRequest(WEB, { max_age: '3600' }).url, WEB_REDIRECT)).kind).toBe('redirect');
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const request = authRequest(WEB, { max_age: '0' });
      const step = await follow(browser, request.url, WEB_REDIRECT);
      expect(isLoginPage(step)).toBe(true);
      const back = await submit(browser, step, 'login', { login: 'demo', password: castellan.userPassword }, WEB_REDIRECT);
      if (back.kind !== 'redirect') throw new Error('expected the redirect back');
      const { status, body } = await redeem(WEB, request, back.params.get('code') ?? '');
      expect(status).toBe(200);
      expect(Number(decodeJwt(String(body.id_token)).auth_time)).toBeGreaterThan(firstAuth);
    });

    it('a small max_age forces a new sign-in once the sign-in is older', async () => {
      const browser = newBrowser();
      await webTokens(browser);
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      expect(isLoginPage(await follow(browser, authRequest(WEB, { max_age: '1' }).url, WEB_REDIRECT))).toBe(true);
    });

    it('login_hint pre-fills the username field, escaped', async () => {
      const hinted = await follow(newBrowser(), authRequest(WEB, { login_hint: 'alice@example.com' }).url, WEB_REDIRECT);
      expect(hinted.kind === 'page' && hinted.html).toMatch(/<input id="login" name="login"[^>]* value="alice@example\.com">/);
      const hostile = await follow(newBrowser(), authRequest(WEB, { login_hint: '"><img src=x>' }).url, WEB_REDIRECT);
      if (hostile.kind !== 'page') throw new Error('expected the login page');
      expect(hostile.html).toContain('value="&quot;&gt;&lt;img src=x&gt;"');
      expect(hostile.html).not.toContain('<img src=x>');
    });
  });

  describe('refresh tokens', () => {
    it('rotate on every use; replaying a rotated one revokes the whole grant and is audited', async () => {
      const { body } = await webTokens(newBrowser(), { scope: 'openid offline_access', prompt: 'consent' });
      const auth = basicAuth(WEB, WEB_SECRET);
      const refresh = (token: unknown) => postToken(castellan.issuer, { grant_type: 'refresh_token', refresh_token: String(token) }, auth);
      expect(body.refresh_token).toEqual(expect.any(String));

      const second = await refresh(body.refresh_token);
      expect(second.status, JSON.stringify(second.body)).toBe(200);
      expect(second.body.refresh_token).not.toBe(body.refresh_token);
      const third = await refresh(second.body.refresh_token);
      expect(third.status).toBe(200);
      expect(third.body.refresh_token).not.toBe(second.body.refresh_token);
      expect(await introspect(third.body.access_token)).toMatchObject({ active: true });
      const auditedBefore = castellan.audit.length;

      // Reuse of the first (already rotated) refresh token: refused...
      const replay = await refresh(body.refresh_token);
      expect(replay.status).toBe(400);
      expect(replay.body.error).toBe('invalid_grant');
      // ...and everything of the grant is revoked: the newest refresh token and access tokens.
      expect((await refresh(third.body.refresh_token)).body.error).toBe('invalid_grant');
      expect(await introspect(third.body.access_token)).toEqual({ active: false });
      expect(await introspect(second.body.access_token)).toEqual({ active: false });
      expect(await introspect(body.access_token)).toEqual({ active: false });

      const audited = castellan.audit.slice(auditedBefore).filter((e) => e.type === 'refresh_token_reuse');
      expect(audited).toEqual([{
        type: 'refresh_token_reuse', tenant: 'demo', outcome: 'failure', error: 'invalid_grant',
        client: WEB, subject: decodeJwt(String(body.id_token)).sub, grantId: expect.any(String),
      }]);
      expect(JSON.stringify(audited)).not.toContain(String(body.refresh_token));
    });
  });

  describe('token endpoint errors of the code flow', () => {
    it('refuses a code at another client, twice, without redirect_uri, and wrong client credentials', async () => {
      const request = authRequest(AGENT, { prompt: 'consent' });
      const code = (await signInAndApprove(newBrowser(), request, AGENT_REDIRECT)).get('code') ?? '';
      const form = { grant_type: 'authorization_code', code, redirect_uri: AGENT_REDIRECT, code_verifier: request.verifier };
      const web = basicAuth(WEB, WEB_SECRET);

      const otherClient = await postToken(castellan.issuer, form, web);
      expect(otherClient.status).toBe(400);
      expect(otherClient.body.error).toBe('invalid_grant');
      const noRedirect = await postToken(castellan.issuer, { grant_type: 'authorization_code', client_id: AGENT, code, code_verifier: request.verifier });
      expect(noRedirect.status).toBe(400);
      expect(noRedirect.body.error).toBe('invalid_request');
      const wrongSecret = await postToken(castellan.issuer, form, basicAuth(WEB, 'not-the-secret'));
      expect(wrongSecret.status).toBe(401);
      expect(wrongSecret.body.error).toBe('invalid_client');
      const unknownGrant = await postToken(castellan.issuer, { grant_type: 'password', client_id: AGENT, username: 'demo', password: 'x' });
      expect(unknownGrant.status).toBe(400);
      expect(unknownGrant.body.error).toMatch(/^(unsupported_grant_type|unauthorized_client)$/);

      // None of that spent the code; its own client redeems it once, and only once.
      const redeemed = await postToken(castellan.issuer, { ...form, client_id: AGENT });
      expect(redeemed.status, JSON.stringify(redeemed.body)).toBe(200);
      const again = await postToken(castellan.issuer, { ...form, client_id: AGENT });
      expect(again.status).toBe(400);
      expect(again.body.error).toBe('invalid_grant');
      // A replayed code revokes what it gave (RFC 9700 §4.5.3 / OAuth 2.1 §4.1.3).
      expect(await introspect(redeemed.body.access_token)).toEqual({ active: false });
    });
  });

  describe('refresh tokens used twice at once', () => {
    // Two concurrent uses of one refresh token both pass oidc-provider's "consumed" check;
    // the store's atomic consume picks one, and the other is reuse (src/storage/oidc-adapter.ts).
    // The loser revokes the whole grant, the Grant record included, so even a winner whose
    // new pair is saved after that sweep holds dead tokens.
    it.each([1, 2, 3, 4, 5])('round %i: at most one answer, every token of the grant revoked, the reuse audited', async () => {
      const { body } = await webTokens(newBrowser(), { scope: 'openid offline_access', prompt: 'consent' });
      const auth = basicAuth(WEB, WEB_SECRET);
      const refresh = (token: unknown) => postToken(castellan.issuer, { grant_type: 'refresh_token', refresh_token: String(token) }, auth);
      const auditedBefore = castellan.audit.length;
      const answers = await Promise.all([refresh(body.refresh_token), refresh(body.refresh_token)]);
      const ok = answers.filter((a) => a.status === 200);
      const refused = answers.filter((a) => a.status === 400 && a.body.error === 'invalid_grant');
      expect(ok.length).toBeLessThanOrEqual(1);
      expect(ok.length + refused.length).toBe(2);
      expect(await introspect(body.access_token)).toEqual({ active: false });
      expect((await refresh(body.refresh_token)).body.error).toBe('invalid_grant');
      for (const winner of ok) {
        expect(await introspect(winner.body.access_token)).toEqual({ active: false });
        expect((await refresh(winner.body.refresh_token)).body.error).toBe('invalid_grant');
      }
      expect(castellan.audit.slice(auditedBefore).filter((e) => e.type === 'refresh_token_reuse').length).toBeGreaterThanOrEqual(1);
    });
  });

  describe('authorization endpoint errors', () => {
    /** Errors oidc-provider may send back: to the validated redirect_uri, with state and iss. */
    const redirected: Array<[string, string, Record<string, string | undefined>]> = [
      ['response_type=token (no implicit)', 'unsupported_response_type', { response_type: 'token' }],
      ['response_type=code id_token (no hybrid)', 'unsupported_response_type', { response_type: 'code id_token' }],
      ['no response_type', 'invalid_request', { response_type: undefined }],
      ['prompt=none with another value', 'invalid_request', { prompt: 'none login' }],
      ['an unknown prompt', 'invalid_request', { prompt: 'bogus' }],
      ['a negative max_age', 'invalid_request', { max_age: '-1' }],
      ['a max_age that is not a number', 'invalid_request', { max_age: 'soon' }],
      ['a code_challenge under 43 characters', 'invalid_request', { code_challenge: 'abc' }],
      ['an unknown resource', 'invalid_target', { resource: 'https://unknown.example/api' }],
      ['a resource with a fragment', 'invalid_target', { resource: 'http://localhost:3001/mcp#x' }],
      ['a request object', 'request_not_supported', { request: 'eyJhbGciOiJub25lIn0.e30.' }],
      ['a request_uri not from PAR', 'request_uri_not_supported', { request_uri: 'https://evil.example/r' }],
      ['response_mode=jwt (JARM is off)', 'unsupported_response_mode', { response_mode: 'jwt' }],
      ['prompt=none with a forged id_token_hint', 'invalid_request', { prompt: 'none', id_token_hint: 'e30.e30.e30' }],
    ];

    it.each(redirected)('%s: back to the client as %s, with state and iss', async (_name, error, params) => {
      const request = authRequest(AGENT, params);
      const response = await getJson(request.url);
      expect(response.status).toBe(303);
      const location = new URL(response.headers.get('location') ?? '');
      expect(`${location.origin}${location.pathname}`).toBe(AGENT_REDIRECT);
      // The implicit and hybrid response types answer in the fragment, as they would have.
      const back = location.search ? location.searchParams : new URLSearchParams(location.hash.slice(1));
      expect(back.get('error')).toBe(error);
      expect(back.get('code')).toBeNull();
      expect(back.get('state')).toBe(request.state);
      expect(back.get('iss')).toBe(castellan.issuer);
    });

    it('a repeated parameter is refused (and the ambiguous state is not echoed)', async () => {
      const response = await getJson(`${authRequest(AGENT).url}&state=second`);
      const back = new URL(response.headers.get('location') ?? '').searchParams;
      expect(back.get('error')).toBe('invalid_request');
      expect(back.get('state')).toBeNull();
      expect(back.get('iss')).toBe(castellan.issuer);
    });

    it('without a client it can trust, answers 400 here and redirects nowhere', async () => {
      for (const [params, error] of [
        [{ client_id: 'no-such-client' }, 'invalid_client'],
        [{ client_id: undefined }, 'invalid_request'],
        [{ redirect_uri: undefined }, 'invalid_request'],
      ] as const) {
        const response = await getJson(authRequest(AGENT, params).url);
        expect(response.status).toBe(400);
        expect(response.headers.get('location')).toBeNull();
        expect(await response.json()).toMatchObject({ error });
      }
    });

    it('is GET only: a POST is 405 with Allow: GET, at /auth and at /session/end', async () => {
      for (const path of ['/auth', '/session/end']) {
        const response = await fetch(`${castellan.issuer}${path}`, {
          method: 'POST',
          redirect: 'manual',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URL(authRequest(AGENT).url).search.slice(1),
        });
        expect(response.status, path).toBe(405);
        expect(response.headers.get('allow')).toBe('GET');
        expect(await response.json()).toMatchObject({ error: 'invalid_request' });
      }
    });
  });

  describe('interaction error paths: standard error JSON, never a 500', () => {
    /** Opens the login page of a fresh interaction. */
    async function loginPage(browser = newDualClient(), clientId = AGENT): Promise<{ browser: DualClient; url: string; uid: string }> {
      const step = await follow(browser, authRequest(clientId).url, clientId === WEB ? WEB_REDIRECT : AGENT_REDIRECT);
      if (!isLoginPage(step)) throw new Error('expected the login page');
      return { browser, url: step.url, uid: new URL(step.url).pathname.split('/').pop() ?? '' };
    }

    const expectError = async (response: Response, status: number, description?: RegExp) => {
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await response.json()) as Record<string, unknown>;
      expect(body).toEqual({ error: expect.any(String), error_description: expect.any(String) });
      if (description) expect(body.error_description).toMatch(description);
      return body;
    };

    it('an unknown uid, or another interaction\'s uid with this cookie, is 400', async () => {
      const { browser } = await loginPage();
      await expectError(await browser.getJson(`${castellan.issuer}/interaction/${'A'.repeat(21)}`), 400);
      const other = await loginPage();
      await expectError(await browser.getJson(other.url), 400, /interaction/);
      await expectError(await browser.getJson(`${castellan.issuer}/interaction/bad%20uid`), 400);
      await expectError(await browser.getJson(`${castellan.issuer}/interaction/${'A'.repeat(80)}`), 400);
      // A browser navigating gets the same status (as a page for people, never a redirect).
      const page = await browser.get(other.url);
      expect(page.status).toBe(400);
      expect(page.headers.get('location')).toBeNull();
    });

    it('a missing or expired interaction cookie is 400', async () => {
      const { url } = await loginPage();
      // No cookie at all (another browser, or cookies cleared).
      await expectError(await newDualClient().getJson(url), 400);
      await expectError(await newDualClient().postFormJson(`${url}/login`, { login: 'demo', password: castellan.userPassword }), 400);
      // The cookie, but the interaction has expired (its record is gone).
      const expired = await loginPage();
      await castellan.running.storage.modelStores('demo').ephemeral.destroy('Interaction', expired.uid);
      await expectError(await expired.browser.getJson(expired.url), 400);
      await expectError(await expired.browser.postFormJson(`${expired.url}/login`, { login: 'demo', password: castellan.userPassword }), 400);
    });

    it('a wrong method is 405 with Allow; an unknown step is 400', async () => {
      const { browser, url } = await loginPage();
      await browser.get(url);
      for (const [method, path, allow] of [['PUT', '/login', 'POST'], ['DELETE', '', 'GET'], ['GET', '/login', 'POST'], ['PATCH', '/abort', 'POST']] as const) {
        const response = method === 'GET' ? await browser.getJson(`${url}${path}`) : await fetch(`${url}${path}`, { method });
        await expectError(response, 405);
        expect(response.headers.get('allow')).toBe(allow);
      }
      await expectError(await browser.getJson(`${url}/nope`), 400);
    });

    it('a missing or wrong CSRF token is 403', async () => {
      const { browser, url } = await loginPage();
      await browser.get(url);
      await expectError(await browser.postFormJson(`${url}/login`, { csrf: '', login: 'demo', password: 'x' }), 403, /CSRF/);
      await expectError(await browser.postFormJson(`${url}/abort`, { csrf: 'forged' }), 403, /CSRF/);
    });

    it('a form that is not urlencoded is 415, an oversized one 413', async () => {
      // The interaction cookies, by hand: this client sends bodies no browser form would.
      const started = await fetch(authRequest(AGENT).url, { redirect: 'manual' });
      const cookie = started.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
      const url = new URL(started.headers.get('location') ?? '', castellan.issuer).href;
      expect((await fetch(url, { headers: { cookie } })).status).toBe(200);
      const json = await fetch(`${url}/login`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{}' });
      await expectError(json, 415);
      const big = await fetch(`${url}/login`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: `login=${'a'.repeat(2 * 1024 * 1024)}`,
      });
      expect(big.status).toBe(413);
    });

    it('a login post when the prompt is consent, and a consent post when the prompt is login, are 400', async () => {
      const { browser, url } = await loginPage();
      await browser.get(url);
      await expectError(await browser.postFormJson(`${url}/confirm`, {}), 400, /not asking for consent/);
      const consent = await submit(browser, { kind: 'page', url, status: 200, html: '' }, 'login', { login: 'demo', password: castellan.userPassword }, AGENT_REDIRECT);
      expect(isConsentPage(consent)).toBe(true);
      if (consent.kind !== 'page') return;
      await expectError(await browser.postFormJson(`${consent.url}/login`, { login: 'demo', password: castellan.userPassword }), 400, /not asking for a login/);
      // The interaction is still usable.
      const back = await submit(browser, consent, 'confirm', {}, AGENT_REDIRECT);
      expect(back.kind === 'redirect' && back.params.get('code')).toEqual(expect.any(String));
    });

    it('a finished interaction cannot be posted to again', async () => {
      const { browser, url } = await loginPage(newDualClient(), WEB);
      const done = await submit(browser, { kind: 'page', url, status: 200, html: '' }, 'abort', {}, WEB_REDIRECT);
      expect(done.kind === 'redirect' && done.params.get('error')).toBe('access_denied');
      await expectError(await browser.postFormJson(`${url}/abort`, {}), 400);
      await expectError(await browser.postFormJson(`${url}/login`, { login: 'demo', password: castellan.userPassword }), 400);
    });
  });
});
