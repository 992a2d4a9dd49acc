import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { newBrowser, pkcePair } from '../support/oauth.ts';

const REDIRECT = 'http://127.0.0.1:53300/callback';

describe('failed sign-ins slow down, then lock (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'login_throttle');
  });
  afterAll(async () => castellan?.stop());

  /** Opens a login page and returns a function that submits it. */
  async function loginForm(): Promise<(login: string, password: string) => Promise<{ status: number; html: string; retryAfter: string | null }>> {
    const browser = newBrowser();
    const query = new URLSearchParams({
      client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid',
      code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
    });
    const auth = await browser.get(`${castellan.issuer}/auth?${query}`);
    const pageUrl = new URL(auth.headers.get('location') ?? '', castellan.issuer).href;
    expect(await (await browser.get(pageUrl)).text()).toContain('name="password"');
    return async (login, password) => {
      const response = await browser.postForm(`${pageUrl}/login`, { login, password });
      return { status: response.status, html: await response.text(), retryAfter: response.headers.get('retry-after') };
    };
  }

  it('locks a login name after 5 failures, even for the right password, and says the same for unknown names', async () => {
    const submit = await loginForm();
    for (let i = 0; i < 5; i += 1) {
      const failed = await submit('demo', `wrong-${i}`);
      expect(failed.status).toBe(400);
      expect(failed.html).toContain('Wrong username or password.');
    }
    const locked = await submit('demo', castellan.userPassword);
    expect(locked.status).toBe(429);
    expect(locked.html).toContain('Too many failed sign-ins');
    expect(Number(locked.retryAfter)).toBeGreaterThan(0);

    // An unknown login name goes through exactly the same steps: nothing tells it apart.
    const other = await loginForm();
    for (let i = 0; i < 5; i += 1) expect((await other('nobody-here', `wrong-${i}`)).html).toContain('Wrong username or password.');
    const unknownLocked = await other('nobody-here', 'anything');
    expect(unknownLocked.status).toBe(429);
    expect(unknownLocked.html).toContain('Too many failed sign-ins');
  });

});
