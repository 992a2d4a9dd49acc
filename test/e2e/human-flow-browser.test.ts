import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { accessibilityProblems } from '../support/accessibility.ts';
import { closeAfterBrowserTests } from '../support/browser-hooks.ts';
import { launchBrowser, newWatchedPage, screenshot, startTestClientSite, type TestClientSite } from '../support/browser.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, pkcePair, postToken } from '../support/oauth.ts';

/*
 * The sign-in a person goes through, in headless Chromium (Debian's package driven by
 * playwright-core; test/support/browser.ts) against Castellan on FerretDB + Redis: the public
 * client demo-agent (PKCE S256) sends the browser to the login page, then the consent page,
 * and the browser lands back at the client (a local HTTP server) with a code the test
 * redeems. Then: a wrong password, a locked login name, a denial, and signing out (with and
 * without a post_logout_redirect_uri, and "No, stay signed in"). Pages use no script.
 * Screenshots of every page go to test-output/screenshots/human-*.png; axe-core checks the
 * login, consent and logout pages.
 */

const AGENT = 'demo-agent';
/** A confidential web client of these tests, for RP-initiated logout back to the client. */
const WEB = 'human-browser-web';
const WEB_SECRET = `web-secret-${'y'.repeat(32)}`;
/** A user of its own for the lockout test, so the demo user is never locked here. */
const LOCKED_LOGIN = 'lockout-person';
const LOCKED_PASSWORD = randomBytes(12).toString('base64url');

interface Authorization {
  url: string;
  verifier: string;
  state: string;
  nonce: string;
}

describe('the human sign-in in a browser (Chromium, FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let browser: Browser;
  let client: TestClientSite | undefined;
  let clientOrigin: string;
  const contexts: BrowserContext[] = [];
  const consoleErrors: string[] = [];

  const callback = () => `${clientOrigin}/callback`;

  /** A fresh browser session (its own cookies), its console watched. */
  const newPage = (): Promise<Page> => newWatchedPage(browser, contexts, consoleErrors);

  function authorization(clientId: string, params: Record<string, string> = {}): Authorization {
    const { verifier, challenge } = pkcePair();
    const state = randomBytes(8).toString('hex');
    const nonce = randomBytes(8).toString('hex');
    const query = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: callback(),
      scope: 'openid profile email',
      state,
      nonce,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...params,
    });
    return { url: `${castellan.issuer}/auth?${query}`, verifier, state, nonce };
  }

  const heading = (page: Page) => page.getByRole('heading', { level: 1 }).textContent();

  async function signIn(page: Page, login: string, password: string): Promise<void> {
    await page.getByLabel('Username').fill(login);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForLoadState();
  }

  /** The parameters the client received, once the browser is back at it. */
  async function backAtClient(page: Page, path = '/callback'): Promise<URLSearchParams> {
    await page.waitForURL((url) => url.origin === clientOrigin && url.pathname === path);
    await expect(heading(page)).resolves.toBe('Test client');
    return new URL(page.url()).searchParams;
  }

  /** Signs the demo user in for the web client (scope openid) and allows; the token response for the code. */
  async function signedInAtWeb(page: Page): Promise<{ status: number; body: Record<string, unknown> }> {
    const request = authorization(WEB, { scope: 'openid' });
    await page.goto(request.url);
    await signIn(page, 'demo', castellan.userPassword);
    await page.getByRole('button', { name: 'Allow' }).click();
    const code = (await backAtClient(page)).get('code') ?? '';
    return postToken(castellan.issuer, {
      grant_type: 'authorization_code', code, redirect_uri: callback(), code_verifier: request.verifier,
    }, basicAuth(WEB, WEB_SECRET));
  }

  beforeAll(async () => {
    // The client's side: any path answers a small page, so the browser visibly lands there.
    client = await startTestClientSite();
    clientOrigin = client.origin;

    [castellan, browser] = await Promise.all([
      startTestCastellan('mongo+redis', 'human_browser'),
      launchBrowser((line) => process.stderr.write(`[chromium] ${line}\n`)),
    ]);
    await castellan.running.storage.users.create({ tenant: 'demo', login: LOCKED_LOGIN, password: LOCKED_PASSWORD });
    await castellan.running.storage.modelStores('demo').durable.upsert('Client', WEB, {
      client_id: WEB,
      client_secret: WEB_SECRET,
      client_name: 'Human flow browser web app',
      application_type: 'web',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [callback()],
      post_logout_redirect_uris: [`${clientOrigin}/signed-out`],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    castellan.running.tenants.invalidate('demo');
  });

  closeAfterBrowserTests(contexts, consoleErrors, () => [browser, castellan, client]);

  it('takes the public client from login and consent to a code the client redeems', async () => {
    const request = authorization(AGENT, { scope: 'openid profile email offline_access', prompt: 'consent' });
    const page = await newPage();
    await page.goto(request.url);
    await expect(heading(page)).resolves.toBe('Sign in to Castellan demo');
    await screenshot(page, 'human-1-login');
    expect(await accessibilityProblems(page)).toEqual([]);
    await signIn(page, 'demo', castellan.userPassword);

    await expect(heading(page)).resolves.toBe('Allow access?');
    expect(await page.locator('main').innerText()).toContain('Demo agent');
    await screenshot(page, 'human-2-consent');
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.getByRole('button', { name: 'Allow' }).click();

    const params = await backAtClient(page);
    await screenshot(page, 'human-3-back-at-client');
    expect(params.get('state')).toBe(request.state);
    expect(params.get('iss')).toBe(castellan.issuer);
    const code = params.get('code');
    expect(code).toEqual(expect.any(String));

    const tokens = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', client_id: AGENT, code: code ?? '', redirect_uri: callback(), code_verifier: request.verifier,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body).toMatchObject({ token_type: 'Bearer', refresh_token: expect.any(String), id_token: expect.any(String) });
    expect(decodeJwt(String(tokens.body.id_token))).toMatchObject({ nonce: request.nonce, aud: AGENT, iss: castellan.issuer });
    const userinfo = await fetch(`${castellan.issuer}/me`, { headers: { authorization: `Bearer ${String(tokens.body.access_token)}` } });
    expect(await userinfo.json()).toMatchObject({ name: 'Demo User', email: 'demo@example.com' });
    // The code is single use.
    const again = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', client_id: AGENT, code: code ?? '', redirect_uri: callback(), code_verifier: request.verifier,
    });
    expect(again.body.error).toBe('invalid_grant');
  });

  it('says so on a wrong password, and signs in on the next try', async () => {
    const request = authorization(AGENT);
    const page = await newPage();
    await page.goto(request.url);
    await signIn(page, 'demo', 'not-the-password');
    expect(await page.getByRole('alert').innerText()).toBe('Wrong username or password.');
    await expect(heading(page)).resolves.toBe('Sign in to Castellan demo');
    await screenshot(page, 'human-4-wrong-password');
    expect(await accessibilityProblems(page)).toEqual([]);
    // Chromium logs the 400 page load as a console error: that one, nothing else.
    expect(consoleErrors.splice(0)).toEqual([expect.stringContaining('status of 400')]);

    await signIn(page, 'demo', castellan.userPassword);
    await expect(heading(page)).resolves.toBe('Allow access?');
  });

  it('locks a login name after repeated failures, even for its right password', async () => {
    const page = await newPage();
    await page.goto(authorization(AGENT).url);
    for (let i = 0; i < 5; i += 1) {
      await signIn(page, LOCKED_LOGIN, `wrong-${i}`);
      expect(await page.getByRole('alert').innerText()).toBe('Wrong username or password.');
    }
    const locked = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/login'));
    await signIn(page, LOCKED_LOGIN, LOCKED_PASSWORD);
    expect((await locked).status()).toBe(429);
    expect(await page.getByRole('alert').innerText()).toMatch(/^Too many failed sign-ins\. Try again in \d+ minutes?\.$/);
    await screenshot(page, 'human-5-locked');
    expect(await accessibilityProblems(page)).toEqual([]);

    // Another browser session does not get around it.
    const other = await newPage();
    await other.goto(authorization(AGENT).url);
    await signIn(other, LOCKED_LOGIN, LOCKED_PASSWORD);
    expect(await other.getByRole('alert').innerText()).toMatch(/^Too many failed sign-ins/);
    expect(consoleErrors.splice(0).map((line) => /status of (\d+)/.exec(line)?.[1])).toEqual(['400', '400', '400', '400', '400', '429', '429']);
  });

  it('sends the person back with access_denied, state and iss on Deny', async () => {
    const request = authorization(AGENT);
    const page = await newPage();
    await page.goto(request.url);
    await signIn(page, 'demo', castellan.userPassword);
    await expect(heading(page)).resolves.toBe('Allow access?');
    await page.getByRole('button', { name: 'Deny' }).click();
    const params = await backAtClient(page);
    await screenshot(page, 'human-6-denied-at-client');
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('code')).toBeNull();
    expect(params.get('state')).toBe(request.state);
    expect(params.get('iss')).toBe(castellan.issuer);
  });

  it('cancels at the login page with access_denied', async () => {
    const request = authorization(AGENT);
    const page = await newPage();
    await page.goto(request.url);
    await page.getByRole('button', { name: 'Cancel' }).click();
    const params = await backAtClient(page);
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('state')).toBe(request.state);
  });

  it('signs out at the client\'s request: confirmation page, back to its post_logout_redirect_uri, session gone', async () => {
    const page = await newPage();
    const tokens = await signedInAtWeb(page);
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);

    const state = randomBytes(6).toString('hex');
    await page.goto(`${castellan.issuer}/session/end?${new URLSearchParams({
      id_token_hint: String(tokens.body.id_token), post_logout_redirect_uri: `${clientOrigin}/signed-out`, state,
    })}`);
    await expect(heading(page)).resolves.toBe('Sign out of Castellan demo?');
    await screenshot(page, 'human-7-logout-confirm');
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    const params = await backAtClient(page, '/signed-out');
    expect(params.get('state')).toBe(state);

    // Signed out: the next authorization asks for the password again.
    await page.goto(authorization(WEB, { scope: 'openid' }).url);
    await expect(heading(page)).resolves.toBe('Sign in to Castellan demo');
  });

  it('signs out without a client: confirmation page, then the signed-out page', async () => {
    const page = await newPage();
    await page.goto(authorization(AGENT).url);
    await signIn(page, 'demo', castellan.userPassword);
    await expect(heading(page)).resolves.toBe('Allow access?');

    await page.goto(`${castellan.issuer}/session/end`);
    await expect(heading(page)).resolves.toBe('Sign out of Castellan demo?');
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.waitForURL(/\/session\/end\/success/);
    await expect(heading(page)).resolves.toBe('Signed out');
    await screenshot(page, 'human-8-signed-out');
    expect(await accessibilityProblems(page)).toEqual([]);

    await page.goto(authorization(AGENT).url);
    await expect(heading(page)).resolves.toBe('Sign in to Castellan demo');
  });

  it('sends a browser that is already signed out straight back to the post_logout_redirect_uri', async () => {
    // oidc-provider answers /session/end without a session with a self-submitting form (its
    // one inline script, allowed by hash in the CSP); the person sees no question.
    const page = await newPage();
    const tokens = await signedInAtWeb(page);
    const logout = (state: string) => `${castellan.issuer}/session/end?${new URLSearchParams({
      id_token_hint: String(tokens.body.id_token), post_logout_redirect_uri: `${clientOrigin}/signed-out`, state,
    })}`;
    await page.goto(logout('first'));
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    expect((await backAtClient(page, '/signed-out')).get('state')).toBe('first');

    // The client asks again (say, from another tab): nothing to confirm, back at once.
    await page.goto(logout('second'));
    expect((await backAtClient(page, '/signed-out')).get('state')).toBe('second');
  });

  it('delivers the code by response_mode=form_post too (the auto-submitting form passes the CSP)', async () => {
    const request = authorization(AGENT, { response_mode: 'form_post' });
    const page = await newPage();
    const posted = page.waitForRequest((r) => r.method() === 'POST' && r.url() === callback());
    await page.goto(request.url);
    await signIn(page, 'demo', castellan.userPassword);
    await page.getByRole('button', { name: 'Allow' }).click();
    const form = new URLSearchParams((await posted).postData() ?? '');
    await backAtClient(page);
    expect(form.get('state')).toBe(request.state);
    expect(form.get('iss')).toBe(castellan.issuer);
    const tokens = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', client_id: AGENT, code: form.get('code') ?? '', redirect_uri: callback(), code_verifier: request.verifier,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
  });

  it('keeps the person signed in on "No, stay signed in", and says so', async () => {
    const page = await newPage();
    await page.goto(authorization(AGENT).url);
    await signIn(page, 'demo', castellan.userPassword);
    await expect(heading(page)).resolves.toBe('Allow access?');

    await page.goto(`${castellan.issuer}/session/end`);
    await page.getByRole('button', { name: 'No, stay signed in' }).click();
    await page.waitForURL(/\/session\/end\/success/);
    await expect(heading(page)).resolves.toBe('Still signed in');
    expect(await page.locator('main').innerText()).toContain('You are still signed in to Castellan demo.');
    await screenshot(page, 'human-9-still-signed-in');
    expect(await accessibilityProblems(page)).toEqual([]);

    // No password asked: straight to consent (a native client is asked every time).
    await page.goto(authorization(AGENT).url);
    await expect(heading(page)).resolves.toBe('Allow access?');
  });
});
