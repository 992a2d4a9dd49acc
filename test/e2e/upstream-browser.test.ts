import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { accessibilityProblems } from '../support/accessibility.ts';
import { closeAfterBrowserTests } from '../support/browser-hooks.ts';
import { launchBrowser, newWatchedPage, screenshot, startTestClientSite, type TestClientSite } from '../support/browser.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { pkcePair, postToken } from '../support/oauth.ts';
import { freePort } from '../support/running-server.ts';
import { createUpstreamIdp } from '../support/upstream-idp.ts';

/*
 * "Sign in with <IdP>" as a person meets it, in headless Chromium (Debian's package driven by
 * playwright-core) against Castellan on FerretDB + Redis. A second tenant of the same
 * Castellan ("upstream") is the upstream OpenID Provider: the demo tenant's login page offers
 * "Sign in with Partner IdP", the browser signs in and consents there, comes back through
 * the callback, consents at the demo tenant and lands at the client with a code. Then a
 * cancel at the upstream, and an unreachable upstream. Screenshots go to
 * test-output/screenshots/upstream-*.png; axe-core checks every page of ours on the way.
 */

const AGENT = 'demo-agent';
const SECRET_ENV = 'CASTELLAN_TEST_UPSTREAM_BROWSER_SECRET';
const UPSTREAM_CLIENT = 'castellan-demo';
const PASSWORD = randomBytes(12).toString('base64url');

describe('"Sign in with <IdP>" in a browser (Chromium, FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let browser: Browser;
  let client: TestClientSite | undefined;
  let clientOrigin: string;
  let upstreamIssuer: string;
  let aliceId: string;
  const contexts: BrowserContext[] = [];
  const consoleErrors: string[] = [];

  /** A fresh browser session (its own cookies), its console watched. */
  const newPage = (): Promise<Page> => newWatchedPage(browser, contexts, consoleErrors);

  const heading = (page: Page) => page.getByRole('heading', { level: 1 }).textContent();

  function authorization(): { url: string; verifier: string; state: string } {
    const { verifier, challenge } = pkcePair();
    const state = randomBytes(8).toString('hex');
    const query = new URLSearchParams({
      client_id: AGENT, response_type: 'code', redirect_uri: `${clientOrigin}/callback`, scope: 'openid profile email',
      state, code_challenge: challenge, code_challenge_method: 'S256',
    });
    return { url: `${castellan.issuer}/auth?${query}`, verifier, state };
  }

  async function backAtClient(page: Page): Promise<URLSearchParams> {
    await page.waitForURL((url) => url.origin === clientOrigin);
    await expect(heading(page)).resolves.toBe('Test client');
    return new URL(page.url()).searchParams;
  }

  beforeAll(async () => {
    client = await startTestClientSite();
    clientOrigin = client.origin;

    [castellan, browser] = await Promise.all([
      startTestCastellan('mongo+redis', 'upstream_browser'),
      launchBrowser((line) => process.stderr.write(`[chromium] ${line}\n`)),
    ]);
    const { storage } = castellan.running;
    upstreamIssuer = (await createUpstreamIdp(castellan, UPSTREAM_CLIENT, SECRET_ENV)).issuer;
    aliceId = (await storage.users.create({
      tenant: 'upstream', login: 'alice', password: PASSWORD,
      claims: { name: 'Alice Upstream', email: 'alice@partner.example', email_verified: true },
    })).id;
    await storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        upstreamIdps: [
          { id: 'partner', name: 'Partner IdP', issuer: upstreamIssuer, clientId: UPSTREAM_CLIENT, clientSecretEnv: SECRET_ENV },
          { id: 'dead', name: 'Unreachable IdP', issuer: `http://127.0.0.1:${await freePort()}/t/nowhere`, clientId: 'nobody' },
        ],
      },
    });
    castellan.running.tenants.invalidate('demo');
  });

  closeAfterBrowserTests(contexts, consoleErrors, () => [browser, castellan, client]);
  afterAll(() => {
    delete process.env[SECRET_ENV];
  });

  it('signs in with the upstream IdP: button, upstream login and consent, back, consent, code, tokens for the linked user', async () => {
    const request = authorization();
    const page = await newPage();
    await page.goto(request.url);
    await expect(heading(page)).resolves.toBe('Sign in to Castellan demo');
    const button = page.getByRole('button', { name: 'Sign in with Partner IdP' });
    await expect(button.isVisible()).resolves.toBe(true);
    await screenshot(page, 'upstream-1-login-with-button');
    expect(await accessibilityProblems(page)).toEqual([]);
    await button.click();

    // At the upstream: its own login page, on its own issuer.
    await page.waitForURL((url) => url.href.startsWith(`${upstreamIssuer}/interaction/`));
    await expect(heading(page)).resolves.toBe('Sign in to Partner IdP');
    await screenshot(page, 'upstream-2-upstream-login');
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();

    await page.waitForURL((url) => url.href.startsWith(`${upstreamIssuer}/interaction/`));
    await expect(heading(page)).resolves.toBe('Allow access?');
    expect(await page.locator('main').innerText()).toContain('Castellan demo');
    await screenshot(page, 'upstream-3-upstream-consent');
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.getByRole('button', { name: 'Allow' }).click();

    // Back at the demo tenant, through the callback: its consent for the agent.
    await page.waitForURL((url) => url.href.startsWith(`${castellan.issuer}/interaction/`));
    await expect(heading(page)).resolves.toBe('Allow access?');
    expect(await page.locator('main').innerText()).toContain('Demo agent');
    await screenshot(page, 'upstream-4-downstream-consent');
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.getByRole('button', { name: 'Allow' }).click();

    const params = await backAtClient(page);
    expect(params.get('state')).toBe(request.state);
    const tokens = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', client_id: AGENT, code: params.get('code') ?? '', redirect_uri: `${clientOrigin}/callback`, code_verifier: request.verifier,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const sub = decodeJwt(String(tokens.body.id_token)).sub;
    const link = await castellan.running.storage.upstreamLinks.find('demo', upstreamIssuer, aliceId);
    expect(link?.userId).toBe(sub);
    const userinfo = await fetch(`${castellan.issuer}/me`, { headers: { authorization: `Bearer ${String(tokens.body.access_token)}` } });
    expect(await userinfo.json()).toMatchObject({ sub, name: 'Alice Upstream', email: 'alice@partner.example' });

    // The same browser again: both sessions stand, so one click on the button signs in as the same user.
    const second = authorization();
    await page.goto(second.url);
    // The demo session already signs the person in: straight back to the client (consent remembered) or to consent.
    await page.waitForURL((url) => url.origin === clientOrigin || url.href.startsWith(`${castellan.issuer}/interaction/`));
    if (page.url().startsWith(clientOrigin)) {
      expect(new URL(page.url()).searchParams.get('code')).toBeTruthy();
    } else {
      await expect(heading(page)).resolves.toBe('Allow access?');
    }
  });

  it('a cancel at the upstream ends the request at the client with access_denied', async () => {
    const request = authorization();
    const page = await newPage();
    await page.goto(request.url);
    await page.getByRole('button', { name: 'Sign in with Partner IdP' }).click();
    await page.waitForURL((url) => url.href.startsWith(`${upstreamIssuer}/interaction/`));
    await page.getByRole('button', { name: 'Cancel' }).click();
    const params = await backAtClient(page);
    expect(Object.fromEntries(params)).toMatchObject({ error: 'access_denied', state: request.state, iss: castellan.issuer });
  });

  it('an unreachable upstream gives the login page again with a clear message, and the password still works', async () => {
    const request = authorization();
    const page = await newPage();
    await page.goto(request.url);
    await page.getByRole('button', { name: 'Sign in with Unreachable IdP' }).click();
    await expect(heading(page)).resolves.toBe('Sign in to Castellan demo');
    expect(await page.getByRole('alert').innerText()).toBe('Signing in with Unreachable IdP did not work: it cannot be reached right now. Try again later, or sign in another way.');
    await screenshot(page, 'upstream-5-unreachable');
    expect(await accessibilityProblems(page)).toEqual([]);
    // Chromium reports the page's own 503 on the console: expected here, and only that.
    expect(consoleErrors.splice(0)).toEqual([expect.stringMatching(/status of 503 .*\/interaction\/[^/]+\/upstream\)$/)]);
    await page.getByLabel('Username').fill('demo');
    await page.getByLabel('Password').fill(castellan.userPassword);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expect(heading(page)).resolves.toBe('Allow access?');
  });
});
