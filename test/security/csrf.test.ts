import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { newBrowser, pkcePair, type Browser } from '../support/oauth.ts';

const REDIRECT = 'http://127.0.0.1:53400/callback';

describe('CSRF tokens on the interaction forms', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('memory', 'csrf');
  });
  afterAll(async () => castellan?.stop());

  async function openLoginPage(browser: Browser): Promise<{ url: string; token: string }> {
    const query = new URLSearchParams({
      client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid',
      code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
    });
    const auth = await browser.get(`${castellan.issuer}/auth?${query}`);
    const url = new URL(auth.headers.get('location') ?? '', castellan.issuer).href;
    const html = await (await browser.get(url)).text();
    const token = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
    expect(token, 'the login page carries a CSRF token').toBeDefined();
    // Every form on the page carries it.
    expect(html.match(/<form /g)?.length).toBe(html.match(/name="csrf"/g)?.length);
    return { url, token: token ?? '' };
  }

  it('refuses a sign-in without the page\'s token, or with another interaction\'s', async () => {
    const browser = newBrowser();
    const mine = await openLoginPage(browser);
    const other = await openLoginPage(newBrowser());
    for (const csrf of ['', 'forged', other.token]) {
      const response = await browser.postForm(`${mine.url}/login`, { csrf, login: 'demo', password: castellan.userPassword });
      expect(response.status).toBe(403);
      // The test browser prefers HTML, so the error comes as a page (src/http/error-handler.ts).
      const page = await response.text();
      expect(page).toContain('<code>invalid_request</code>');
      expect(page).toContain('CSRF token');
    }
    const accepted = await browser.postForm(`${mine.url}/login`, { csrf: mine.token, login: 'demo', password: castellan.userPassword });
    expect(accepted.status).toBe(303);
  });

  it('refuses consent and denial without the token', async () => {
    const browser = newBrowser();
    const page = await openLoginPage(browser);
    const login = await browser.postForm(`${page.url}/login`, { csrf: page.token, login: 'demo', password: castellan.userPassword });
    const resume = await browser.get(new URL(login.headers.get('location') ?? '', castellan.issuer).href);
    const consentUrl = new URL(resume.headers.get('location') ?? '', castellan.issuer).href;
    expect(await (await browser.get(consentUrl)).text()).toContain('Allow access?');
    for (const action of ['confirm', 'abort']) {
      const response = await browser.postForm(`${consentUrl}/${action}`, { csrf: 'forged' });
      expect(response.status).toBe(403);
    }
  });
});
