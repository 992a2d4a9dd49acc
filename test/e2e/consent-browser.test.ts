import { decodeJwt } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { accessibilityProblems } from '../support/accessibility.ts';
import { closeAfterBrowserTests } from '../support/browser-hooks.ts';
import { launchBrowser, newWatchedPage, screenshot } from '../support/browser.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { pkcePair, postToken } from '../support/oauth.ts';

/*
 * The consent page as a person meets it, in headless Chromium (test/support/browser.ts)
 * against Castellan on FerretDB + Redis: the tenant's look, the scope picker used with the
 * mouse and keyboard, the token that follows carrying only what stayed checked; the pages
 * at desktop and phone widths (screenshots in test-output/screenshots/consent-*.png) and
 * axe-core on the sign-in, consent and error pages.
 */

const REDIRECT = 'http://127.0.0.1:53720/callback';
const NOTES = 'http://localhost:3001/mcp';
const ACCENT = '#7c2d12';
const ACCENT_RGB = 'rgb(124, 45, 18)';
const LOGO = 'https://brand.example/logo.svg';
const LOGO_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40"><rect width="40" height="40" rx="8" fill="#7c2d12"/></svg>';
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 740 };

describe('the consent page in a browser (Chromium, FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    [castellan, browser] = await Promise.all([
      startTestCastellan('mongo+redis', 'consent_browser'),
      launchBrowser((line) => process.stderr.write(`[chromium] ${line}\n`)),
    ]);
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        branding: { accentColor: ACCENT, logoUri: LOGO },
        consent: { scopeDescriptions: { 'notes:read': 'Read your notes', 'notes:write': 'Create and change your notes' } },
      },
    });
    castellan.running.tenants.invalidate('demo');
  });

  closeAfterBrowserTests(contexts, consoleErrors, () => [browser, castellan]);

  /** A fresh browser session; the logo host and the client's redirect_uri are answered in the browser (no network). */
  async function newPage(): Promise<Page> {
    // Error pages answer 400, which Chromium reports on the console.
    const page = await newWatchedPage(browser, contexts, consoleErrors, { context: { viewport: DESKTOP }, ignoreConsole: /status of 400/ });
    const context = page.context();
    await context.route(LOGO, (route) => route.fulfill({ status: 200, contentType: 'image/svg+xml', body: LOGO_SVG }));
    await context.route(`${REDIRECT}**`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>client</title><p>back at the client</p>' }));
    return page;
  }

  /** Screenshots at desktop and phone width; on the phone nothing may scroll sideways. */
  async function bothWidths(page: Page, name: string): Promise<void> {
    await screenshot(page, `${name}-desktop`);
    await page.setViewportSize(PHONE);
    await screenshot(page, `${name}-phone`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow, `${name} fits a 375 px wide screen`).toBeLessThanOrEqual(0);
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.setViewportSize(DESKTOP);
  }

  it('signs in, unchecks a scope on the consent page and gets a token without it', async () => {
    const page = await newPage();
    const { verifier, challenge } = pkcePair();
    const query = new URLSearchParams({
      client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid email notes:read notes:write',
      resource: NOTES, state: 'browser-state', code_challenge: challenge, code_challenge_method: 'S256',
    });
    await page.goto(`${castellan.issuer}/auth?${query}`);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Sign in to Castellan demo');
    // The tenant's look: its name and logo in the header, its colour on the buttons.
    await expect(page.locator('header').innerText()).resolves.toContain('Castellan demo');
    expect(await page.locator('header img').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
    expect(await page.getByRole('button', { name: 'Sign in' }).evaluate((b) => getComputedStyle(b).backgroundColor)).toBe(ACCENT_RGB);
    await bothWidths(page, 'consent-1-login');

    await page.getByLabel('Username').fill('demo');
    await page.getByLabel('Password').fill(castellan.userPassword);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/interaction\//);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Allow access?');
    const main = await page.locator('main').innerText();
    expect(main).toContain('Demo agent');
    expect(main).toContain('Demo notes MCP server');
    expect(main).toContain(NOTES);

    const openid = page.getByRole('checkbox', { name: /Know who you are/ });
    const email = page.getByRole('checkbox', { name: /See your email address/ });
    const write = page.getByRole('checkbox', { name: /Create and change your notes/ });
    const read = page.getByRole('checkbox', { name: /Read your notes/ });
    expect(await openid.isChecked()).toBe(true);
    expect(await openid.isDisabled()).toBe(true);
    for (const box of [email, write, read]) {
      expect(await box.isChecked()).toBe(true);
      expect(await box.isEnabled()).toBe(true);
    }
    await bothWidths(page, 'consent-2-consent');

    // The keyboard reaches the first optional scope and shows where it is in the accent colour.
    await page.locator('h1').click();
    await page.keyboard.press('Tab');
    const focus = await page.evaluate(() => {
      const el = document.activeElement as HTMLInputElement;
      const style = getComputedStyle(el);
      return { value: el.value, outline: style.outlineStyle, color: style.outlineColor };
    });
    expect(focus).toEqual({ value: 'email', outline: 'solid', color: ACCENT_RGB });
    await page.keyboard.press('Space');
    expect(await email.isChecked()).toBe(false);
    await write.uncheck();
    await screenshot(page, 'consent-3-unchecked');
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${REDIRECT}**`);

    const params = new URL(page.url()).searchParams;
    expect(params.get('state')).toBe('browser-state');
    // The grant holds what stayed checked; what was unchecked is recorded as refused.
    const { provider } = await castellan.running.tenants.get('demo');
    const code = await provider.AuthorizationCode.find(params.get('code') ?? '');
    const grant = code?.grantId ? await provider.Grant.find(code.grantId) : undefined;
    expect(grant?.getOIDCScope().split(' ').sort()).toEqual(['notes:read', 'openid']);
    expect(grant?.getRejectedOIDCScope().split(' ').sort()).toEqual(['email', 'notes:write']);
    const { status, body } = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', client_id: 'demo-agent', code: params.get('code') ?? '', redirect_uri: REDIRECT,
      code_verifier: verifier, resource: NOTES,
    });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(decodeJwt(String(body.access_token)).scope).toBe('notes:read');
  });

  it('shows an unknown client an error page without redirecting, accessible at both widths', async () => {
    const page = await newPage();
    const query = new URLSearchParams({
      client_id: 'no-such-client', response_type: 'code', redirect_uri: 'https://evil.example/cb', scope: 'openid',
      code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
    });
    const url = `${castellan.issuer}/auth?${query}`;
    const response = await page.goto(url);
    expect(response?.status()).toBe(400);
    expect(page.url()).toBe(url);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Something went wrong');
    expect(await page.locator('main code').innerText()).toBe('invalid_client');
    expect(await page.locator('a').count()).toBe(0);
    await bothWidths(page, 'consent-4-error');
  });
});
