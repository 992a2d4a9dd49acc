import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, newBrowser, pkcePair } from '../support/oauth.ts';

const FORM = 'application/x-www-form-urlencoded';
const REDIRECT = 'http://127.0.0.1:53682/callback';

let castellan: TestCastellan;
beforeAll(async () => {
  castellan = await startTestCastellan('memory', 'security_headers');
});
afterAll(async () => castellan?.stop());

function postToken(body: string, secret = castellan.clientSecret): Promise<Response> {
  return fetch(`${castellan.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': FORM, authorization: basicAuth('demo-service', secret) },
    body,
  });
}

/** CSP directives by name, e.g. { 'frame-ancestors': ["'none'"] }. */
function cspDirectives(response: Response): Map<string, string[]> {
  const policy = response.headers.get('content-security-policy') ?? '';
  const directives = new Map<string, string[]>();
  for (const part of policy.split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) directives.set(name.toLowerCase(), values);
  }
  return directives;
}

/** Clickjacking, MIME sniffing and referrer leaks are closed on every response. */
function expectBaseHeaders(response: Response, what: string): void {
  expect(response.headers.get('x-content-type-options'), what).toBe('nosniff');
  expect(response.headers.get('x-frame-options'), what).toBe('DENY');
  expect(cspDirectives(response).get('frame-ancestors'), what).toEqual(["'none'"]);
  expect(response.headers.get('referrer-policy'), what).toMatch(/^(no-referrer|same-origin|strict-origin)/);
}

/** The interaction (login) page of a fresh code flow, fetched as a browser would. */
async function loginPage(): Promise<{ page: Response; url: string; browser: ReturnType<typeof newBrowser> }> {
  const browser = newBrowser();
  const query = new URLSearchParams({
    client_id: 'demo-agent',
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid',
    code_challenge: pkcePair().challenge,
    code_challenge_method: 'S256',
  });
  const start = await browser.get(`${castellan.issuer}/auth?${query}`);
  expectBaseHeaders(start, 'authorization redirect');
  const url = new URL(start.headers.get('location') ?? '', castellan.baseUrl).href;
  return { page: await browser.get(url), url, browser };
}

/** HTML may style by nonce but never run inline script (the CSP falls back to default-src). */
async function expectNoInlineScript(response: Response, what: string): Promise<void> {
  expect(response.headers.get('content-type'), what).toMatch(/^text\/html/);
  const directives = cspDirectives(response);
  const scriptSources = directives.get('script-src') ?? directives.get('default-src');
  expect(scriptSources, `${what}: script-src or default-src must be set`).toBeDefined();
  expect(scriptSources, what).not.toContain("'unsafe-inline'");
  expect(scriptSources, what).not.toContain("'unsafe-eval'");
  expect(directives.get('default-src'), what).toEqual(["'none'"]);
  const html = await response.text();
  expect(html, what).not.toMatch(/<script/i);
  expect(html, what).not.toMatch(/\son[a-z]+\s*=/i);
}

describe('security headers', () => {
  it('sets nosniff, frame-ancestors none, X-Frame-Options DENY and a Referrer-Policy on a sample of responses', async () => {
    const samples: Array<[string, Promise<Response>]> = [
      ['RFC 8414 metadata', fetch(`${castellan.baseUrl}/.well-known/oauth-authorization-server/t/demo`)],
      ['OIDC discovery', fetch(`${castellan.issuer}/.well-known/openid-configuration`)],
      ['jwks', fetch(`${castellan.issuer}/jwks`)],
      ['token success', postToken('grant_type=client_credentials')],
      ['token error', postToken('grant_type=client_credentials', 'wrong-secret')],
      ['404 at the root', fetch(`${castellan.baseUrl}/nope`)],
      ['404 in a tenant', fetch(`${castellan.issuer}/nope`)],
      ['404 unknown tenant', fetch(`${castellan.baseUrl}/t/nope/token`)],
      ['healthz', fetch(`${castellan.baseUrl}/healthz`)],
      ['login page', loginPage().then(({ page }) => page)],
    ];
    for (const [what, pending] of samples) {
      const response = await pending;
      expect(response.status, what).toBeLessThan(500);
      expectBaseHeaders(response, what);
    }
  });

  it('forbids caching of token responses, success and error alike (RFC 6749 §5.1)', async () => {
    const success = await postToken('grant_type=client_credentials');
    expect(success.status).toBe(200);
    expect(success.headers.get('cache-control')).toMatch(/\bno-store\b/);
    for (const failing of [postToken('grant_type=client_credentials', 'wrong-secret'), postToken('grant_type=nope')]) {
      const response = await failing;
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.headers.get('cache-control')).toMatch(/\bno-store\b/);
    }
  });

  it('serves login and consent HTML without inline script, uncached, unframeable', async () => {
    const { page, url, browser } = await loginPage();
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toMatch(/\bno-store\b/);
    await expectNoInlineScript(page, 'login page');

    const wrongPassword = await browser.postForm(`${url}/login`, { login: 'demo', password: 'not the password' });
    expect(wrongPassword.status).toBe(400);
    expectBaseHeaders(wrongPassword, 'login page with error');
    await expectNoInlineScript(wrongPassword, 'login page with error');

    const loggedIn = await browser.postForm(`${url}/login`, { login: 'demo', password: castellan.userPassword });
    expect(loggedIn.status).toBe(303);
    let next = new URL(loggedIn.headers.get('location') ?? '', url).href;
    for (let step = 0; step < 4 && !next.includes('/interaction/'); step += 1) {
      const hop = await browser.get(next);
      next = new URL(hop.headers.get('location') ?? '', next).href;
    }
    const consent = await browser.get(next);
    expect(consent.status).toBe(200);
    expect(await consent.clone().text()).toContain('Allow access?');
    expectBaseHeaders(consent, 'consent page');
    await expectNoInlineScript(consent, 'consent page');
  });
});

/** GET with a Host header of our choosing (fetch does not let a caller forge Host). */
function getWithHost(path: string, headers: Record<string, string>): Promise<{ status: number; body: string; location: string | undefined }> {
  const { port } = new URL(castellan.baseUrl);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, location: res.headers.location }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a forged Host header', () => {
  const withForwarding = { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' };
  const forged: Array<Record<string, string>> = [{ host: 'evil.example' }, withForwarding];

  it.each([
    '/.well-known/oauth-authorization-server/t/demo',
    '/.well-known/openid-configuration/t/demo',
    '/t/demo/.well-known/oauth-authorization-server',
    '/t/demo/.well-known/openid-configuration',
  ])('does not move the endpoints in %s off the configured base URL', async (path) => {
    for (const headers of forged) {
      const { status, body } = await getWithHost(path, headers);
      expect(status).toBe(200);
      const metadata = JSON.parse(body) as Record<string, unknown>;
      expect(metadata.issuer).toBe(castellan.issuer);
      const urls = Object.entries(metadata).filter(([key]) => key.endsWith('_endpoint') || key === 'jwks_uri');
      expect(urls.length).toBeGreaterThan(3);
      for (const [key, value] of urls) expect(String(value), key).toMatch(new RegExp(`^${castellan.issuer}/`));
      expect(body).not.toContain('evil.example');
    }
  });

  it('does not change the issuer sent back with an authorization error (RFC 9207)', async () => {
    const query = new URLSearchParams({ client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: 's' });
    const { status, location } = await getWithHost(`/t/demo/auth?${query}`, withForwarding);
    expect(status).toBe(303);
    expect(new URL(location ?? 'about:blank').searchParams.get('iss')).toBe(castellan.issuer);
  });
});
