import { Secret, TOTP } from 'otpauth';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { accessibilityProblems } from '../support/accessibility.ts';
import { closeAfterBrowserTests } from '../support/browser-hooks.ts';
import { launchBrowser, newWatchedPage, screenshot } from '../support/browser.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { pkcePair, postToken } from '../support/oauth.ts';
import { upsertNativeClient } from '../support/totp-flow.ts';

/*
 * Two-step verification as a person meets it, in headless Chromium against Castellan on
 * FerretDB + Redis: a tenant that requires TOTP, a user without it signs in, reads the
 * secret off the enrolment page into an "authenticator app" (otpauth), confirms with a first
 * code, sees the recovery codes once, and finishes; the next sign-in asks for a code.
 * axe-core checks each page; screenshots go to test-output/screenshots/totp-*.png.
 */

const TENANT = 'mfa-e2e';
const CLIENT = 'totp-browser-agent';
const REDIRECT = 'http://127.0.0.1:53950/callback';
const PASSWORD = 'correct horse battery staple';

describe('TOTP in the browser (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const consoleErrors: string[] = [];

  async function newPage(): Promise<Page> {
    const page = await newWatchedPage(browser, contexts, consoleErrors);
    // The client's redirect_uri: nothing listens there, the browser only has to arrive.
    await page.context().route(`${REDIRECT}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'back at the client' }));
    return page;
  }

  /** Opens /auth and signs in with the password; returns the PKCE verifier for the token request. */
  async function signIn(page: Page, login: string): Promise<string> {
    const { verifier, challenge } = pkcePair();
    const query = new URLSearchParams({
      client_id: CLIENT, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: 'st',
      code_challenge: challenge, code_challenge_method: 'S256',
    });
    await page.goto(`${castellan.baseUrl}/t/${TENANT}/auth?${query}`);
    await page.getByLabel('Username').fill(login);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForLoadState();
    return verifier;
  }

  /** Allows on the consent page if it is shown, then exchanges the code; returns the sign-in's amr. */
  async function finish(page: Page, verifier: string): Promise<unknown> {
    if (!page.url().startsWith(REDIRECT)) {
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.waitForURL(`${REDIRECT}**`);
    }
    const code = new URL(page.url()).searchParams.get('code') ?? '';
    const record = await castellan.running.storage.modelStores(TENANT).ephemeral.find('AuthorizationCode', code);
    const token = await postToken(`${castellan.baseUrl}/t/${TENANT}`, {
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: CLIENT, code_verifier: verifier,
    });
    expect(token.status).toBe(200);
    return record?.amr;
  }

  beforeAll(async () => {
    [castellan, browser] = await Promise.all([
      startTestCastellan('mongo+redis', 'totp_browser'),
      launchBrowser((line) => process.stderr.write(`[chromium] ${line}\n`)),
    ]);
    const { storage } = castellan.running;
    await storage.tenants.create({ id: TENANT, displayName: 'Acme Secure', settings: { displayName: 'Acme Secure', mfa: { totp: 'required' } } });
    await upsertNativeClient(castellan, TENANT, CLIENT, { client_name: 'TOTP test agent' });
    await storage.users.create({ tenant: TENANT, login: 'alice', password: PASSWORD });
  });

  closeAfterBrowserTests(contexts, consoleErrors, () => [browser, castellan]);

  it('enrols with the secret read off the page, then signs in with a code from the app', async () => {
    const page = await newPage();
    const verifier = await signIn(page, 'alice');
    await expect(page.getByRole('heading', { name: 'Set up two-step verification' }).isVisible()).resolves.toBe(true);
    await expect(page.getByRole('img', { name: /QR code/ }).isVisible()).resolves.toBe(true);
    await screenshot(page, 'totp-1-enrol');
    expect(await accessibilityProblems(page)).toEqual([]);

    // The person's authenticator app, fed the key as typed from the page.
    const typedKey = (await page.locator('#totp-secret').textContent()) ?? '';
    const app = new TOTP({ issuer: 'Acme Secure', label: 'alice', secret: Secret.fromBase32(typedKey.replaceAll(' ', '')), algorithm: 'SHA1', digits: 6, period: 30 });
    const enrolledAt = Date.now();
    await page.getByLabel('Code from the app').fill(app.generate({ timestamp: enrolledAt }));
    await page.getByRole('button', { name: 'Turn on and continue' }).click();
    await page.waitForLoadState();
    await expect(page.getByRole('heading', { name: 'Two-step verification is on' }).isVisible()).resolves.toBe(true);
    const recoveryCodes = await page.locator('#recovery-codes code').allTextContents();
    expect(recoveryCodes).toHaveLength(10);
    await screenshot(page, 'totp-2-recovery-codes');
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.getByRole('button', { name: 'I saved them, continue' }).click();
    await page.waitForLoadState();
    expect(await finish(page, verifier)).toEqual(['pwd', 'otp']);

    // The next sign-in, in a fresh browser session, asks for a code.
    const next = await newPage();
    const nextVerifier = await signIn(next, 'alice');
    await expect(next.getByRole('heading', { name: 'Enter your verification code' }).isVisible()).resolves.toBe(true);
    const input = next.getByLabel('Verification code');
    expect(await input.getAttribute('inputmode')).toBe('numeric');
    expect(await input.getAttribute('autocomplete')).toBe('one-time-code');
    await screenshot(next, 'totp-3-code');
    expect(await accessibilityProblems(next)).toEqual([]);

    // The enrolment used this step's code; a replay is refused, the next step's code (drift) is taken.
    await input.fill(app.generate({ timestamp: enrolledAt }));
    await next.getByRole('button', { name: 'Verify' }).click();
    await next.waitForLoadState();
    await expect(next.getByRole('alert').textContent()).resolves.toContain('That code is not right, or was already used');
    await screenshot(next, 'totp-4-code-refused');
    // Chromium logs the refused form's 400; that one is expected, nothing else.
    expect(consoleErrors.splice(0)).toEqual([expect.stringMatching(/status of 400 .*\/interaction\/[^/]+\/totp\)$/)]);
    await next.getByLabel('Verification code').fill(app.generate({ timestamp: enrolledAt + 30_000 }));
    await next.getByRole('button', { name: 'Verify' }).click();
    await next.waitForLoadState();
    expect(await finish(next, nextVerifier)).toEqual(['pwd', 'otp']);

    // A recovery code, typed in lower case, signs in once.
    const third = await newPage();
    const thirdVerifier = await signIn(third, 'alice');
    await third.getByRole('link', { name: /Use a recovery code/ }).click();
    await third.waitForLoadState();
    await screenshot(third, 'totp-5-recovery');
    expect(await accessibilityProblems(third)).toEqual([]);
    await third.getByLabel('Recovery code').fill((recoveryCodes[0] ?? '').toLowerCase());
    await third.getByRole('button', { name: 'Sign in' }).click();
    await third.waitForLoadState();
    expect(await finish(third, thirdVerifier)).toEqual(['pwd', 'mfa']);
  });
});
