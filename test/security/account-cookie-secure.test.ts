import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';

/*
 * The account security page's cookies behind https (RFC 6265bis §4.1.2.5; RFC 9700 §4.13):
 * its session cookie lets the holder turn two-step verification off, so it must never travel
 * over plain http. Castellan runs behind a TLS-terminating proxy: an https
 * CASTELLAN_BASE_URL, reached over http on its port, as security/cookie-flags.test.ts does for
 * oidc-provider's cookies (which are Secure from the base URL alone).
 */
const PASSWORD = 'a long enough password';

interface Visit {
  /** Set-Cookie of the sign-in form and of the signed-in answer. */
  form: string[];
  session: string[];
}

/** Opens the page, signs in with the password; every request carries `headers`. */
async function visit(direct: string, login: string, headers: Record<string, string>): Promise<Visit> {
  const url = `${direct}/t/optional/account/security`;
  const page = await fetch(url, { headers: { accept: 'text/html', ...headers } });
  expect(page.status).toBe(200);
  const form = page.headers.getSetCookie();
  const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
  const signedIn = await fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded', ...headers,
      cookie: form.map((line) => line.split(';')[0]).join('; '),
    },
    body: new URLSearchParams({ csrf, action: 'sign-in', login, password: PASSWORD, code: '' }).toString(),
  });
  expect(signedIn.status, await signedIn.clone().text()).toBe(303);
  return { form, session: signedIn.headers.getSetCookie() };
}

function expectSecure(cookies: Visit, secure: boolean): void {
  const all = [...cookies.form, ...cookies.session];
  expect(cookies.form.some((line) => line.startsWith('castellan_account_form='))).toBe(true);
  expect(cookies.session.some((line) => line.startsWith('castellan_account='))).toBe(true);
  for (const line of all) {
    const attributes = line.split(';').slice(1).map((part) => part.trim().toLowerCase());
    expect(attributes, line).toContain('httponly');
    expect(attributes, line).toContain('samesite=strict');
    expect(attributes, line).toContain('path=/t/optional/account/security');
    expect(attributes.includes('secure'), line).toBe(secure);
  }
}

async function startBehindHttps(name: string, extra: Record<string, string>): Promise<{ castellan: TestCastellan; direct: string }> {
  const env = { ...(await testEnvironment('mongo+redis', name)), ...extra };
  env.CASTELLAN_BASE_URL = `https://localhost:${env.PORT}`;
  const castellan = await startTestCastellan('mongo+redis', name, env);
  await castellan.running.storage.tenants.create({ id: 'optional', displayName: 'Optional', settings: { mfa: { totp: 'optional' } } });
  for (const login of ['ada', 'bob']) await castellan.running.storage.users.create({ tenant: 'optional', login, password: PASSWORD });
  return { castellan, direct: `http://127.0.0.1:${env.PORT}` };
}

describe('account page cookies behind a trusted proxy that says https (FerretDB + Redis)', () => {
  let started: { castellan: TestCastellan; direct: string };
  beforeAll(async () => {
    started = await startBehindHttps('security_acct_cookie_proxy', { CASTELLAN_TRUST_PROXY: 'true' });
  });
  afterAll(async () => started?.castellan.stop());

  it('sets the sign-in form and session cookies HttpOnly, SameSite=Strict, Secure, under the page path', async () => {
    expectSecure(await visit(started.direct, 'ada', { 'x-forwarded-proto': 'https' }), true);
  });
});

describe('account page cookies with an https base URL, whatever the request says (FerretDB + Redis)', () => {
  let started: { castellan: TestCastellan; direct: string };
  beforeAll(async () => {
    started = await startBehindHttps('security_acct_cookie_https', {});
  });
  afterAll(async () => started?.castellan.stop());

  // Finding F4 (test/security/README.md, fixed): the page used `secure: ctx.secure`, false here
  // (no trusted X-Forwarded-Proto), while every oidc-provider cookie is Secure from the base URL.
  it('sets them Secure as oidc-provider does', async () => {
    expectSecure(await visit(started.direct, 'bob', {}), true);
  });
});
