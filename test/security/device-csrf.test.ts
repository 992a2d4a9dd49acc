import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { newBrowser, type Browser } from '../support/oauth.ts';

/*
 * CSRF on the device verification forms (RFC 9700 §4.7, RFC 6749 §10.12; oidc-provider's xsrf
 * token, bound to the browser's session): a code entry or a confirmation without the page's
 * token, with a forged one or with another browser's, gets no further, and the device is not
 * approved by it.
 */
const CONFIRM_PAGE = 'Is this the device in front of you?';

describe('CSRF on the device verification forms (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_device_csrf');
  });
  afterAll(async () => castellan?.stop());

  const startDevice = async () => {
    const response = await fetch(`${castellan.issuer}/device/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'demo-agent', scope: 'openid' }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { user_code: string; device_code: string };
  };
  const xsrfOf = (html: string) => /name="xsrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
  const openEntry = async (browser: Browser) => {
    const xsrf = xsrfOf(await (await browser.get(`${castellan.issuer}/device`)).text());
    expect(xsrf).not.toBe('');
    return xsrf;
  };
  const poll = async (deviceCode: string) => {
    const response = await fetch(`${castellan.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: 'demo-agent', device_code: deviceCode }),
    });
    return (await response.json()) as Record<string, unknown>;
  };

  it('refuses a code entry without the page\'s token, with a forged one, or with another browser\'s', async () => {
    const { user_code: userCode } = await startDevice();
    const browser = newBrowser();
    await openEntry(browser);
    const othersToken = await openEntry(newBrowser());
    for (const xsrf of [undefined, '', 'forged', othersToken]) {
      const response = await browser.postForm(`${castellan.issuer}/device`, { ...(xsrf === undefined ? {} : { xsrf }), user_code: userCode });
      const html = await response.text();
      expect(response.status, String(xsrf)).toBeGreaterThanOrEqual(400);
      expect(response.status, String(xsrf)).toBeLessThan(500);
      expect(html, String(xsrf)).not.toContain(CONFIRM_PAGE);
    }
    // The page's own token still works: the refusals above were about the token alone.
    const xsrf = await openEntry(browser);
    const accepted = await browser.postForm(`${castellan.issuer}/device`, { xsrf, user_code: userCode });
    expect(await accepted.text()).toContain(CONFIRM_PAGE);
  });

  it('refuses a confirmation with a forged token, and the device stays unapproved', async () => {
    const { user_code: userCode, device_code: deviceCode } = await startDevice();
    const browser = newBrowser();
    const xsrf = await openEntry(browser);
    const confirmPage = await (await browser.postForm(`${castellan.issuer}/device`, { xsrf, user_code: userCode })).text();
    expect(confirmPage).toContain(CONFIRM_PAGE);
    const forged = await browser.postForm(`${castellan.issuer}/device`, { xsrf: 'forged', user_code: userCode, confirm: 'yes' });
    expect(forged.status).toBeGreaterThanOrEqual(400);
    expect(forged.status).toBeLessThan(500);
    expect(forged.headers.get('location')).toBeNull();
    expect(await poll(deviceCode)).toMatchObject({ error: 'authorization_pending' });
  });

  // A browser without a session cookie (cookies blocked, a scripted post, a forged cookie):
  // oidc-provider's redrawn form used to trip its own session check (a 500).
  it('answers a code entry or a resume without any session with the page again, never a 500', async () => {
    const { user_code: userCode } = await startDevice();
    for (const cookie of [undefined, '_session=forged; _session.sig=forged']) {
      const headers = { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) };
      const entry = await fetch(`${castellan.issuer}/device`, { method: 'POST', headers, body: new URLSearchParams({ user_code: userCode, xsrf: 'x' }) });
      expect(entry.status).toBe(400);
      expect(entry.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await entry.text()).toContain('Connect a device');
      for (const path of ['/device/anything', '/device/auth', '/device/confirm']) {
        const resume = await fetch(`${castellan.issuer}${path}`, { headers: cookie ? { cookie } : {} });
        expect(resume.status, path).toBeLessThan(500);
        expect(resume.status, path).toBeGreaterThanOrEqual(400);
      }
    }
    // The redrawn form came with a session: a browser that keeps cookies can go on from it.
    const browser = newBrowser();
    const redrawn = await browser.postForm(`${castellan.issuer}/device`, { user_code: 'WRONG-CODE' });
    expect(redrawn.status).toBe(400);
    expect(redrawn.headers.getSetCookie().some((line) => line.startsWith('_session='))).toBe(true);
  });
});
