import { Secret, TOTP } from 'otpauth';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { accessibilityProblems } from '../support/accessibility.ts';
import { closeAfterBrowserTests } from '../support/browser-hooks.ts';
import { launchBrowser, newWatchedPage, screenshot } from '../support/browser.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { pkcePair } from '../support/oauth.ts';
import { upsertNativeClient } from '../support/totp-flow.ts';

/*
 * The account security page as a person finds and uses it, in headless Chromium against
 * Castellan on FerretDB + Redis: from the login page's "Manage two-step verification" link,
 * sign in, turn TOTP on (the key read off the page into an "authenticator app", otpauth),
 * see the recovery codes once, leave and come back (now the code is asked), get new
 * recovery codes, turn TOTP off. axe-core checks each page; no console error (a CSP
 * violation would be one); screenshots go to test-output/screenshots/account-*.png.
 */

const TENANT = 'account-e2e';
const CLIENT = 'account-browser-agent';
const REDIRECT = 'http://127.0.0.1:53960/callback';
const PASSWORD = 'correct horse battery staple';

describe('the account security page in the browser (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const consoleErrors: string[] = [];

  /** A fresh browser session (its own cookies), its console watched. */
  const newPage = (): Promise<Page> => newWatchedPage(browser, contexts, consoleErrors);

  /** A screenshot and the axe check of the page as it is now. */
  async function check(page: Page, name: string): Promise<void> {
    await screenshot(page, `account-${name}`);
    expect(await accessibilityProblems(page), name).toEqual([]);
  }

  async function heading(page: Page): Promise<string> {
    return (await page.getByRole('heading', { level: 1 }).textContent()) ?? '';
  }

  async function click(page: Page, button: string): Promise<void> {
    await page.getByRole('button', { name: button, exact: true }).click();
    await page.waitForLoadState();
  }

  beforeAll(async () => {
    [castellan, browser] = await Promise.all([
      startTestCastellan('mongo+redis', 'account_browser'),
      launchBrowser((line) => process.stderr.write(`[chromium] ${line}\n`)),
    ]);
    const { storage } = castellan.running;
    await storage.tenants.create({ id: TENANT, displayName: 'Acme Accounts', settings: { displayName: 'Acme Accounts', mfa: { totp: 'optional' } } });
    await storage.tenants.create({ id: 'no-totp', displayName: 'Plain', settings: { mfa: { totp: 'off' } } });
    for (const tenant of [TENANT, 'no-totp']) await upsertNativeClient(castellan, tenant, CLIENT, { client_name: 'Account test agent' });
    await storage.users.create({ tenant: TENANT, login: 'bea', password: PASSWORD });
  });

  closeAfterBrowserTests(contexts, consoleErrors, () => [browser, castellan]);

  const authorizeUrl = (tenant: string) => `${castellan.baseUrl}/t/${tenant}/auth?${new URLSearchParams({
    client_id: CLIENT, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: 'st',
    code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
  })}`;

  it('is found from the login page; TOTP goes on, recovery codes are shown once and renewed, and TOTP goes off', async () => {
    const page = await newPage();
    const accountUrl = `${castellan.baseUrl}/t/${TENANT}/account/security`;

    // Where a person signs in, a small link leads to the page.
    await page.goto(authorizeUrl(TENANT));
    const link = page.getByRole('link', { name: 'Manage two-step verification' });
    expect(await link.getAttribute('href')).toBe(`/t/${TENANT}/account/security`);
    await check(page, '0-login-page');
    await link.click();
    await page.waitForLoadState();
    expect(page.url()).toBe(accountUrl);
    expect(await heading(page)).toBe('Sign in to manage two-step verification');
    await check(page, '1-sign-in');

    await page.getByLabel('Username').fill('bea');
    await page.getByLabel('Password').fill(PASSWORD);
    await click(page, 'Continue');
    expect(await heading(page)).toBe('Two-step verification');
    await expect(page.locator('main').textContent()).resolves.toContain('Two-step verification is off for bea.');
    await check(page, '2-overview-off');

    await click(page, 'Set up two-step verification');
    expect(await heading(page)).toBe('Set up two-step verification');
    await expect(page.getByRole('img', { name: /QR code/ }).isVisible()).resolves.toBe(true);
    await check(page, '3-enrol');
    const typedKey = (await page.locator('#totp-secret').textContent()) ?? '';
    const app = new TOTP({ issuer: 'Acme Accounts', label: 'bea', secret: Secret.fromBase32(typedKey.replaceAll(' ', '')), algorithm: 'SHA1', digits: 6, period: 30 });
    const enrolledAt = Date.now();
    await page.getByLabel('Code from the app').fill(app.generate({ timestamp: enrolledAt }));
    await click(page, 'Turn on');
    expect(await heading(page)).toBe('Two-step verification is on');
    const firstCodes = await page.locator('#recovery-codes code').allTextContents();
    expect(firstCodes).toHaveLength(10);
    await check(page, '4-recovery-codes');

    await click(page, 'I saved them');
    const overviewOn = (await page.locator('main').textContent()) ?? '';
    expect(overviewOn).toContain('Two-step verification is on for bea. Recovery codes left: 10.');
    for (const code of firstCodes) expect(overviewOn).not.toContain(code);
    await check(page, '5-overview-on');

    // Leaving the page ends its session; coming back asks again, now with the code.
    await click(page, 'Done');
    expect(await heading(page)).toBe('Signed out');
    await check(page, '6-signed-out');
    await page.getByRole('link', { name: 'Manage two-step verification again' }).click();
    await page.waitForLoadState();
    expect(await heading(page)).toBe('Sign in to manage two-step verification');
    expect(await page.content()).not.toContain(firstCodes[0] ?? 'no code');
    await page.getByLabel('Username').fill('bea');
    await page.getByLabel('Password').fill(PASSWORD);
    // The enrolment used this step's code; the next step's is within the accepted drift.
    await page.getByLabel('Verification code, if two-step verification is on').fill(app.generate({ timestamp: enrolledAt + 30_000 }));
    await click(page, 'Continue');
    expect(await heading(page)).toBe('Two-step verification');

    await click(page, 'Get new recovery codes');
    expect(await heading(page)).toBe('New recovery codes');
    const newCodes = await page.locator('#recovery-codes code').allTextContents();
    expect(newCodes).toHaveLength(10);
    expect(newCodes.filter((code) => firstCodes.includes(code))).toEqual([]);
    await check(page, '7-new-recovery-codes');
    await click(page, 'I saved them');

    await click(page, 'Turn off two-step verification');
    await expect(page.getByRole('status').textContent()).resolves.toBe('Two-step verification is off.');
    await expect(page.locator('main').textContent()).resolves.toContain('Two-step verification is off for bea.');
    await check(page, '8-turned-off');
    const user = await castellan.running.storage.users.findByLogin(TENANT, 'bea');
    expect(user?.totp).toBeUndefined();
  });

  it('is not offered on the login page of a tenant without TOTP', async () => {
    const page = await newPage();
    await page.goto(authorizeUrl('no-totp'));
    await expect(page.getByLabel('Password').isVisible()).resolves.toBe(true);
    expect(await page.getByRole('link', { name: 'Manage two-step verification' }).count()).toBe(0);
  });
});
