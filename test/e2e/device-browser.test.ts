import { createAdapterFactory } from '../../src/storage/oidc-adapter.ts';
import { request } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startNotesServer } from '../../mcp-examples/notes-server/notes-server.ts';
import type { RunningHttpServer } from '../../mcp-examples/shared/http.ts';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import type { TenantSettingsInput } from '../../src/tenants/tenant-settings.ts';
import { accessibilityProblems } from '../support/accessibility.ts';
import { launchBrowser, newWatchedPage, screenshot } from '../support/browser.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { freePort } from '../support/running-server.ts';

/*
 * The RFC 8628 device flow as a person meets it, in headless Chromium (Debian's package,
 * driven by playwright-core; test/support/browser.ts) against Castellan on FerretDB + Redis:
 * the device asks for a code over HTTP, the browser enters it, confirms the device, signs in
 * and approves, and the device's next poll gets tokens that the example notes MCP server
 * accepts. Then the ways it must not work: No on the confirmation page, an expired code,
 * polling too fast, guessing codes, approving a code twice. Screenshots of every page go to
 * test-output/screenshots/device-*.png.
 */

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const CLIENT_ID = 'demo-agent';
const SCOPE = 'openid notes:read notes:write';
/** The demo tenant's device settings here: a 1 s interval keeps polling tests fast. */
const DEVICE_FLOW = { enabled: true, interval: 1, attempts: 50 };

interface DeviceAuthorization {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

interface TokenAnswer {
  status: number;
  body: Record<string, unknown>;
}

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A request from a chosen loopback source address (127.0.0.0/8 is all loopback on Linux):
 * Castellan sees another client address without trusting any proxy header.
 */
function fromAddress(localAddress: string, method: 'GET' | 'POST', url: string, cookie: string, form?: Record<string, string>): Promise<HttpAnswer> {
  const body = form ? new URLSearchParams(form).toString() : '';
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      localAddress,
      headers: {
        accept: 'text/html',
        ...(cookie ? { cookie } : {}),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } : {}),
      },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The name=value pairs of a response's Set-Cookie headers, as a Cookie header. */
const cookiesOf = (answer: HttpAnswer): string =>
  [answer.headers['set-cookie'] ?? []].flat().map((line) => line.split(';')[0]).join('; ');

/** A well-formed user code that was never issued (one in 20^8: never an issued one in practice). */
const wrongCode = (): string => Array.from({ length: 8 }, () => 'BCDFGHJKLMNPQRSTVWXZ'[Math.floor(Math.random() * 20)]).join('');

describe('the device flow in a browser (Chromium, FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let notes: RunningHttpServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const serverErrors: unknown[] = [];
  /** Console errors of the pages other than CSP refusing oidc-provider's inline onfocus handler. */
  const consoleErrors: string[] = [];

  async function setDeviceFlow(deviceFlow: TenantSettingsInput['deviceFlow']): Promise<void> {
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        resources: [{ uri: notes.url, scopes: ['notes:read', 'notes:write'], accessTokenFormat: 'jwt' }],
        deviceFlow,
      },
    });
    castellan.running.tenants.invalidate('demo');
  }

  /** A fresh browser session (its own cookies), its console watched. */
  const newPage = (): Promise<Page> => newWatchedPage(browser, contexts, consoleErrors, {
    // oidc-provider's code input carries onfocus="this.select()"; our CSP (no inline script) refuses it.
    ignoreConsole: /Executing inline event handler violates/,
  });

  /** RFC 8628 §3.1: what the device asks first. */
  async function deviceAuthorization(): Promise<DeviceAuthorization> {
    const response = await fetch(`${castellan.issuer}/device/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: CLIENT_ID, scope: SCOPE, resource: notes.url }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as DeviceAuthorization;
  }

  /** RFC 8628 §3.4: one poll of the token endpoint. */
  async function poll(deviceCode: string): Promise<TokenAnswer> {
    const response = await fetch(`${castellan.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: DEVICE_CODE_GRANT, device_code: deviceCode, client_id: CLIENT_ID }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** Polls as a polite device does: first waits out the interval since its last poll. */
  function politeDevice(authorization: DeviceAuthorization): { poll(): Promise<TokenAnswer> } {
    let last = 0;
    return {
      async poll() {
        const wait = last + authorization.interval * 1000 + 50 - Date.now();
        if (wait > 0) await delay(wait);
        last = Date.now();
        return poll(authorization.device_code);
      },
    };
  }

  /** Types the code at the verification page and submits it. */
  async function enterCode(page: Page, typed: string): Promise<void> {
    await page.getByLabel('Code').fill(typed);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForLoadState();
  }

  beforeAll(async () => {
    const notesPort = await freePort();
    [castellan, browser] = await Promise.all([
      startTestCastellan('mongo+redis', 'device_browser'),
      launchBrowser((line) => process.stderr.write(`[chromium] ${line}\n`)),
    ]);
    notes = await startNotesServer({
      port: notesPort,
      issuer: castellan.issuer,
      resource: `http://localhost:${notesPort}/mcp`,
      onError: (error) => serverErrors.push(error),
    });
    await setDeviceFlow(DEVICE_FLOW);
  });

  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((context) => context.close()));
    expect(serverErrors.splice(0)).toEqual([]);
    expect(consoleErrors.splice(0)).toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    await notes?.close();
    await castellan?.stop();
  });

  it('takes a device from its code to an MCP tool call: code typed in lower case with spaces, confirm, sign in, allow', async () => {
    const authorization = await deviceAuthorization();
    expect(authorization.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    expect(authorization.verification_uri).toBe(`${castellan.issuer}/device`);
    expect(authorization.verification_uri_complete).toBe(`${castellan.issuer}/device?user_code=${authorization.user_code}`);
    expect(authorization.interval).toBe(DEVICE_FLOW.interval);
    expect(authorization.expires_in).toBe(600); // codeTtl's default
    const device = politeDevice(authorization);
    expect((await device.poll()).body).toMatchObject({ error: 'authorization_pending' });

    const page = await newPage();
    await page.goto(authorization.verification_uri);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Connect a device to Castellan demo');
    await screenshot(page, 'device-1-code-entry');
    expect(await accessibilityProblems(page)).toEqual([]);

    // "bcdf-ghjk" typed as " bc df  gh jk": case, spaces and the dash do not matter.
    const typed = ` ${authorization.user_code.toLowerCase().replace('-', '').replace(/(..)/g, '$1 ')}`;
    await enterCode(page, typed);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Is this the device in front of you?');
    const confirmation = await page.locator('main').innerText();
    expect(confirmation).toContain('Demo agent');
    expect(confirmation).toContain(authorization.user_code);
    for (const scope of SCOPE.split(' ')) expect(confirmation).toContain(scope);
    await screenshot(page, 'device-2-confirm');
    expect(await accessibilityProblems(page)).toEqual([]);

    await page.getByRole('button', { name: 'Yes, continue' }).click();
    await page.waitForURL(/\/interaction\//);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Sign in to Castellan demo');
    await screenshot(page, 'device-3-login');
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.getByLabel('Username').fill('demo');
    await page.getByLabel('Password').fill(castellan.userPassword);
    await page.getByRole('button', { name: 'Sign in' }).click();

    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Allow access?');
    await screenshot(page, 'device-4-consent');
    expect(await accessibilityProblems(page)).toEqual([]);
    // Still pending while the person has not answered.
    expect((await device.poll()).body).toMatchObject({ error: 'authorization_pending' });
    await page.getByRole('button', { name: 'Allow' }).click();

    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Device connected');
    expect(await page.locator('main').innerText()).toContain('Demo agent is signed in');
    await screenshot(page, 'device-5-success');
    expect(await accessibilityProblems(page)).toEqual([]);

    const granted = await device.poll();
    expect(granted.status).toBe(200);
    // openid is for the id_token; the access token is for the notes resource (RFC 8707).
    expect(granted.body).toMatchObject({ token_type: 'Bearer', scope: 'notes:read notes:write' });
    const accessToken = String(granted.body.access_token);
    expect(typeof granted.body.id_token).toBe('string');

    // The device code is single use.
    const again = await device.poll();
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: 'invalid_grant' });

    // The token works at the notes MCP server, through the MCP SDK's client.
    const mcp = new Client({ name: 'castellan-device-e2e', version: '1.0.0' });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(notes.url), {
      requestInit: { headers: { authorization: `Bearer ${accessToken}` } },
    }));
    try {
      const added = await mcp.callTool({ name: 'add_note', arguments: { title: 'from the device', text: 'signed in by a person' } });
      expect(added.isError).toBeFalsy();
      const listed = await mcp.callTool({ name: 'list_notes', arguments: {} });
      const [content] = listed.content as Array<{ type: string; text: string }>;
      expect(JSON.parse(content?.text ?? 'null')).toEqual([expect.objectContaining({ title: 'from the device' })]);
    } finally {
      await mcp.close();
    }
  });

  it('denies the device when the person answers No on the confirmation page', async () => {
    const authorization = await deviceAuthorization();
    const device = politeDevice(authorization);
    const page = await newPage();
    // verification_uri_complete carries the code: oidc-provider's auto-submitting form posts it.
    await page.goto(authorization.verification_uri_complete);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Is this the device in front of you?');
    await page.getByRole('button', { name: 'No, cancel' }).click();
    await page.waitForLoadState();
    expect(await page.getByRole('alert').innerText()).toBe('You cancelled the sign-in for that device.');
    await screenshot(page, 'device-6-denied');
    expect(await accessibilityProblems(page)).toEqual([]);

    const answer = await device.poll();
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: 'access_denied' });
  });

  it('answers expired_token for a code past its lifetime, and the page says it expired', async () => {
    const authorization = await deviceAuthorization();
    // Waiting out codeTtl (at least 60 s) is too slow: the stored DeviceCode is re-saved with
    // its `exp` in the past. It stays in Redis (expiresIn 60): oidc-provider must find the
    // record to tell an expired code (expired_token) from an unknown one (invalid_grant).
    const store = castellan.running.storage.modelStores('demo').ephemeral;
    const stored = await store.find('DeviceCode', authorization.device_code);
    expect(stored).toMatchObject({ userCode: authorization.user_code.replace('-', '') });
    await store.upsert('DeviceCode', authorization.device_code, { ...stored, exp: Math.floor(Date.now() / 1000) - 5 }, 60);

    const answer = await poll(authorization.device_code);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: 'expired_token' });

    const page = await newPage();
    await page.goto(authorization.verification_uri);
    await enterCode(page, authorization.user_code);
    expect(await page.getByRole('alert').innerText()).toBe('That code has expired. Start again on the device.');
    await screenshot(page, 'device-7-expired');
  });

  // A device code's record outlives its exp (the adapter keeps it a grace period longer), so
  // a late poll still learns expired_token (RFC 8628 §3.5) rather than invalid_grant.
  it('answers expired_token also when the code ran out at its natural lifetime', async () => {
    const authorization = await deviceAuthorization();
    const stores = castellan.running.storage.modelStores('demo');
    const stored = await stores.ephemeral.find('DeviceCode', authorization.device_code);
    // Saved through the adapter, as oidc-provider saves it, with 1 s left.
    await createAdapterFactory(stores)('DeviceCode').upsert(authorization.device_code, { ...stored, exp: Math.floor(Date.now() / 1000) + 1 }, 1);
    await delay(1_500);
    expect((await poll(authorization.device_code)).body).toMatchObject({ error: 'expired_token' });
  });

  it('answers slow_down to a device polling too fast, 5 s more each time (RFC 8628 §3.5)', async () => {
    const authorization = await deviceAuthorization();
    // Two polls at once: exactly one is let through.
    const pair = await Promise.all([poll(authorization.device_code), poll(authorization.device_code)]);
    const errors = pair.map((answer) => answer.body.error).sort();
    expect(errors).toEqual(['authorization_pending', 'slow_down']);
    const intervals = [pair.find((a) => a.body.error === 'slow_down')];
    intervals.push(await poll(authorization.device_code), await poll(authorization.device_code));
    // The new interval is stated in error_description (RFC 8628 defines no member for it).
    const reported = intervals.map((answer) => {
      expect(answer?.status).toBe(400);
      expect(answer?.body.error).toBe('slow_down');
      return Number(/wait at least (\d+) seconds/.exec(String(answer?.body.error_description))?.[1]);
    });
    const start = DEVICE_FLOW.interval;
    expect(reported).toEqual([start + 5, start + 10, start + 15]);
  });

  it('limits wrong codes per session and per address with a "Too many attempts" page (429)', async () => {
    await setDeviceFlow({ ...DEVICE_FLOW, attempts: 3 });
    try {
      // One person (one browser session, 127.0.0.1) guessing: three wrong codes are told so…
      const guesser = await newPage();
      await guesser.goto(`${castellan.issuer}/device`);
      for (let i = 0; i < 3; i += 1) {
        await enterCode(guesser, wrongCode());
        expect(await guesser.getByRole('alert').innerText()).toBe('That code is not valid. Check it and try again.');
      }
      await screenshot(guesser, 'device-8-wrong-code');
      // …the fourth is refused before oidc-provider looks it up.
      const refused = guesser.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/device'));
      await enterCode(guesser, wrongCode());
      const limited = await refused;
      expect(limited.status()).toBe(429);
      expect(Number(limited.headers()['retry-after'])).toBeGreaterThan(0);
      await expect(guesser.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Too many attempts');
      expect(await guesser.getByRole('alert').innerText()).toMatch(/^Too many codes were tried for Castellan demo\. Wait \d+ minutes? and try again\.$/);
      await screenshot(guesser, 'device-9-too-many-attempts');
      expect(await accessibilityProblems(guesser)).toEqual([]);

      // Per address: a new browser session from the same address is refused too.
      const sameAddress = await newPage();
      await sameAddress.goto(`${castellan.issuer}/device`);
      await enterCode(sameAddress, wrongCode());
      await expect(sameAddress.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Too many attempts');
      // Chromium logs each 429 page load as a console error: those two, nothing else.
      expect(consoleErrors.splice(0)).toEqual([
        expect.stringContaining('status of 429 (Too Many Requests)'),
        expect.stringContaining('status of 429 (Too Many Requests)'),
      ]);

      // Per session: the guesser's session cookie from another address is refused…
      const sessionCookie = (await guesser.context().cookies(castellan.issuer)).map((c) => `${c.name}=${c.value}`).join('; ');
      expect(sessionCookie).toMatch(/(^|; )_session=/);
      const otherAddress = await fromAddress('127.0.0.2', 'POST', `${castellan.issuer}/device`, sessionCookie, { xsrf: 'x', user_code: wrongCode() });
      expect(otherAddress.status).toBe(429);
      expect(otherAddress.body).toContain('Too many attempts');
      // …while a new session from a third address is still answered.
      const page = await fromAddress('127.0.0.3', 'GET', `${castellan.issuer}/device`, '');
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
      expect(xsrf).not.toBe('');
      const fresh = await fromAddress('127.0.0.3', 'POST', `${castellan.issuer}/device`, cookiesOf(page), { xsrf, user_code: wrongCode() });
      expect(fresh.status).toBe(200);
      expect(fresh.body).toContain('That code is not valid.');
    } finally {
      await setDeviceFlow(DEVICE_FLOW);
    }
  });

  // Only typed codes count as guesses: the Yes/No answer does not spend the budget.
  it('lets a person confirm the right code after typos within the limit', async () => {
    // Limiters are per (attempts, window): another window gives counters of its own, apart
    // from the test above, whose address is spent.
    await setDeviceFlow({ ...DEVICE_FLOW, attempts: 3, attemptWindowSeconds: 599 });
    try {
      const authorization = await deviceAuthorization();
      const page = await newPage();
      await page.goto(authorization.verification_uri);
      await enterCode(page, wrongCode());
      await enterCode(page, wrongCode());
      await enterCode(page, authorization.user_code);
      await page.getByRole('button', { name: 'Yes, continue' }).click();
      await page.waitForLoadState();
      consoleErrors.splice(0);
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Sign in to Castellan demo');
    } finally {
      await setDeviceFlow(DEVICE_FLOW);
    }
  });

  it('refuses to approve a code twice: a second browser is told it was already used', async () => {
    const authorization = await deviceAuthorization();
    const device = politeDevice(authorization);
    const first = await newPage();
    await first.goto(authorization.verification_uri_complete);
    await first.getByRole('button', { name: 'Yes, continue' }).click();
    await first.waitForURL(/\/interaction\//);

    // Confirmed but not yet approved: nobody else may take the code over.
    const second = await newPage();
    await second.goto(authorization.verification_uri);
    await enterCode(second, authorization.user_code);
    expect(await second.getByRole('alert').innerText()).toBe('That code was already used.');

    await first.getByLabel('Username').fill('demo');
    await first.getByLabel('Password').fill(castellan.userPassword);
    await first.getByRole('button', { name: 'Sign in' }).click();
    await first.getByRole('button', { name: 'Allow' }).click();
    await expect(first.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Device connected');

    // Approved: the same code in another browser (by the complete URI this time) is refused.
    const third = await newPage();
    await third.goto(authorization.verification_uri_complete);
    expect(await third.getByRole('alert').innerText()).toBe('That code was already used.');
    await screenshot(third, 'device-10-already-used');
    expect(await accessibilityProblems(third)).toEqual([]);

    expect((await device.poll()).status).toBe(200);
    // After the device has its tokens, still refused.
    await second.goto(authorization.verification_uri);
    await enterCode(second, authorization.user_code);
    expect(await second.getByRole('alert').innerText()).toBe('That code was already used.');
  });
});
