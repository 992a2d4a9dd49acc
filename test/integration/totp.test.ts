import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TotpService } from '../../src/accounts/totp-service.ts';
import { timeStep, totpCodeAt } from '../../src/accounts/totp.ts';
import { runCli } from '../support/cli.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { newBrowser, postToken } from '../support/oauth.ts';
import {
  appFromSecret, codeFrom, enrolDirectly as enrol, openLoginPage, totpServiceOf, upsertNativeClient, wrongCode, type LoginPage, type TotpApp as App,
} from '../support/totp-flow.ts';

/*
 * TOTP second factor (RFC 6238) at the HTTP level on FerretDB + Redis: enrolment inside the
 * sign-in where a tenant requires it, the code page, replay and wrong codes, recovery codes,
 * the shared lockout, the server-side state between password and code, amr in the id_token,
 * and the operator's reset from the command line.
 */

const CLIENT = 'totp-agent';
const REDIRECT = 'http://127.0.0.1:53900/callback';
const PASSWORD = 'a long enough password';

type Started = LoginPage;

describe('TOTP second factor (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let totp: TotpService;

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'totp');
    const { storage } = castellan.running;
    for (const [id, mode] of [['secure', 'required'], ['plain', 'off'], ['optional', 'optional']] as const) {
      await storage.tenants.create({ id, displayName: `${id[0]?.toUpperCase()}${id.slice(1)} Corp`, settings: { mfa: { totp: mode } } });
      await upsertNativeClient(castellan, id, CLIENT);
    }
    // The same factor service the server uses (same KEK and stores), to enrol users directly.
    totp = totpServiceOf(castellan);
  });
  afterAll(async () => castellan?.stop());

  async function createUser(tenant: string, login: string): Promise<string> {
    return (await castellan.running.storage.users.create({ tenant, login, password: PASSWORD })).id;
  }

  /** Enrols a user through the service, as self-service would; returns their app. */
  const enrolDirectly = (tenant: string, userId: string) => enrol(totp, tenant, userId);

  /** /auth → the login page of a new interaction. */
  const start = (tenant: string, browser = newBrowser()): Promise<Started> =>
    openLoginPage(castellan, { tenant, client: CLIENT, redirectUri: REDIRECT, state: 's1', browser });

  /** Posts the password; returns where the server sends the browser next. */
  async function signIn(s: Started, login: string, password = PASSWORD): Promise<string> {
    const response = await s.browser.postForm(`${s.pageUrl}/login`, { login, password });
    expect(response.status, await response.clone().text()).toBe(303);
    return new URL(response.headers.get('location') ?? '', s.pageUrl).href;
  }

  /**
   * From a resume URL: consent if asked, then the code at the redirect, exchanged for tokens.
   * `amr` is what the sign-in recorded (oidc-provider copies the login result's amr onto the
   * authorization code); `idToken` are the id_token's claims.
   */
  async function complete(s: Started, url: string): Promise<{ amr: unknown; sub: unknown; idToken: Record<string, unknown> }> {
    let next = url;
    for (let i = 0; i < 8; i += 1) {
      if (next.startsWith(REDIRECT)) {
        const code = new URL(next).searchParams.get('code') ?? '';
        const tenant = new URL(s.issuer).pathname.split('/')[2] ?? '';
        const record = await castellan.running.storage.modelStores(tenant).ephemeral.find('AuthorizationCode', code);
        const token = await postToken(s.issuer, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: CLIENT, code_verifier: s.verifier });
        expect(token.status, JSON.stringify(token.body)).toBe(200);
        const idToken = decodeJwt(String(token.body.id_token));
        return { amr: record?.amr, sub: idToken.sub, idToken };
      }
      const response = await s.browser.get(next);
      if (response.status >= 300 && response.status < 400) {
        next = new URL(response.headers.get('location') ?? '', next).href;
        continue;
      }
      const html = await response.text();
      expect(html, html.slice(0, 300)).toContain('/confirm"');
      const confirmed = await s.browser.postForm(`${new URL(next).origin}${new URL(next).pathname}/confirm`, {});
      next = new URL(confirmed.headers.get('location') ?? '', next).href;
    }
    throw new Error('authorization did not finish');
  }

  async function postCode(s: Started, step: 'totp' | 'totp-recovery' | 'totp-enrol', code: string): Promise<{ status: number; html: string; location: string | null; retryAfter: string | null }> {
    const response = await s.browser.postForm(`${s.pageUrl}/${step}`, { code });
    return { status: response.status, html: await response.text(), location: response.headers.get('location'), retryAfter: response.headers.get('retry-after') };
  }

  it('enrols inside the sign-in where TOTP is required: QR code, secret, first code, recovery codes once, amr pwd+otp', async () => {
    const userId = await createUser('secure', 'rita');
    const s = await start('secure');
    const enrolUrl = await signIn(s, 'rita');
    expect(enrolUrl).toBe(`${s.pageUrl}/totp-enrol`);
    const page = await s.browser.get(enrolUrl);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(/<svg [^>]*role="img"[^>]*aria-label="QR code/);
    expect(html).not.toMatch(/<img|<script|data:/);
    const secretText = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(html)?.[1] ?? '';
    expect(secretText).toMatch(/^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/);
    expect(html).toMatch(/<input id="code" name="code" type="text" inputmode="numeric"[^>]*autocomplete="one-time-code"/);
    expect(html).toContain('<label for="code">');
    // Nothing is stored before the first code is right.
    expect((await castellan.running.storage.users.findById('secure', userId))?.totp).toBeUndefined();

    const app = appFromSecret(secretText);
    const wrong = await postCode(s, 'totp-enrol', wrongCode(app));
    expect(wrong.status).toBe(400);
    expect(wrong.html).toContain('That code is not right');
    expect(/<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(wrong.html)?.[1]).toBe(secretText);

    const confirmed = await postCode(s, 'totp-enrol', codeFrom(app));
    expect(confirmed.status).toBe(200);
    const codes = [...confirmed.html.matchAll(/<li><code>([0-9A-Z-]+)<\/code><\/li>/g)].map((m) => m[1]);
    expect(codes).toHaveLength(10);
    const stored = await castellan.running.storage.users.findById('secure', userId);
    expect(stored?.totp?.recoveryCodesLeft).toBe(10);

    const done = await s.browser.postForm(`${s.pageUrl}/totp-done`, {});
    expect(done.status).toBe(303);
    const { amr, sub } = await complete(s, new URL(done.headers.get('location') ?? '', s.pageUrl).href);
    expect(sub).toBe(userId);
    expect(amr).toEqual(['pwd', 'otp']);

    // The sealed secret is all that is stored: neither the base32 secret nor a recovery code appears.
    const { MongoClient } = await import('mongodb');
    const client = await new MongoClient(castellan.env.MONGODB_URL ?? '').connect();
    try {
      const doc = await client.db(castellan.env.MONGODB_DATABASE).collection('users').findOne({ _id: `secure:${userId}` as never });
      const text = JSON.stringify(doc);
      expect(text).toContain('"totp"');
      expect(text).not.toContain(secretText.replaceAll(' ', ''));
      for (const code of codes) expect(text).not.toContain(String(code).replaceAll('-', ''));
    } finally {
      await client.close();
    }

    // Signing in again asks for a code, and a code whose step was used is refused.
    const again = await start('secure');
    expect(await signIn(again, 'rita')).toBe(`${again.pageUrl}/totp`);
    const codePage = await again.browser.get(`${again.pageUrl}/totp`);
    expect(codePage.status).toBe(200);
    const codeHtml = await codePage.text();
    expect(codeHtml).toMatch(/inputmode="numeric"[^>]*autocomplete="one-time-code"/);
    expect(codeHtml).toContain('totp-recovery');
    const usedCode = totpCodeAt(app.secret, [...app.used][0] ?? 0);
    const replayed = await postCode(again, 'totp', usedCode);
    expect(replayed.status).toBe(400);
    expect(replayed.html).toContain('That code is not right, or was already used');
    const good = await postCode(again, 'totp', codeFrom(app));
    expect(good.status).toBe(303);
    expect((await complete(again, new URL(good.location ?? '', again.pageUrl).href)).amr).toEqual(['pwd', 'otp']);
  });

  it('asks enrolled users of an optional tenant for a code; the same code twice is refused', async () => {
    const userId = await createUser('optional', 'olga');
    const { app } = await enrolDirectly('optional', userId);
    const first = await start('optional');
    expect(await signIn(first, 'olga')).toBe(`${first.pageUrl}/totp`);
    const code = codeFrom(app);
    const ok = await postCode(first, 'totp', code);
    expect(ok.status).toBe(303);
    expect((await complete(first, new URL(ok.location ?? '', first.pageUrl).href)).amr).toEqual(['pwd', 'otp']);

    const second = await start('optional');
    await signIn(second, 'olga');
    expect((await postCode(second, 'totp', code)).status).toBe(400);

    // Users without TOTP sign in with the password alone there.
    await createUser('optional', 'otto');
    const plain = await start('optional');
    const resumed = await signIn(plain, 'otto');
    expect(resumed).not.toContain('/totp');
    expect((await complete(plain, resumed)).amr).toEqual(['pwd']);
  });

  it('asks for no code where the tenant turned TOTP off', async () => {
    const userId = await createUser('plain', 'paul');
    await enrolDirectly('plain', userId);
    const s = await start('plain');
    const resumed = await signIn(s, 'paul');
    expect(resumed).not.toContain('/totp');
    expect((await complete(s, resumed)).amr).toEqual(['pwd']);
  });

  it('takes a recovery code once, with amr pwd+mfa', async () => {
    const userId = await createUser('optional', 'rob');
    const { recoveryCodes } = await enrolDirectly('optional', userId);
    const [code = ''] = recoveryCodes;
    const s = await start('optional');
    await signIn(s, 'rob');
    const page = await s.browser.get(`${s.pageUrl}/totp-recovery`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<label for="recovery-code">');
    const used = await postCode(s, 'totp-recovery', code.toLowerCase());
    expect(used.status).toBe(303);
    expect((await complete(s, new URL(used.location ?? '', s.pageUrl).href)).amr).toEqual(['pwd', 'mfa']);
    expect((await castellan.running.storage.users.findById('optional', userId))?.totp?.recoveryCodesLeft).toBe(9);

    const again = await start('optional');
    await signIn(again, 'rob');
    const refused = await postCode(again, 'totp-recovery', code);
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('That recovery code is not right, or was already used.');
  });

  it('counts wrong codes against the password lock: after 5 the account is locked, code and password alike', async () => {
    const userId = await createUser('optional', 'lena');
    const { app } = await enrolDirectly('optional', userId);
    const s = await start('optional');
    await signIn(s, 'lena');
    for (let i = 0; i < 5; i += 1) {
      const wrong = await postCode(s, 'totp', wrongCode(app));
      expect(wrong.status).toBe(400);
      expect(wrong.html).toContain('That code is not right');
    }
    const locked = await postCode(s, 'totp', codeFrom(app));
    expect(locked.status).toBe(429);
    expect(locked.html).toContain('Too many failed sign-ins');
    expect(Number(locked.retryAfter)).toBeGreaterThan(0);

    // The right password does not reset the count, and the password page says the same lock.
    const other = await start('optional');
    const response = await other.browser.postForm(`${other.pageUrl}/login`, { login: 'lena', password: PASSWORD });
    expect(response.status).toBe(429);
    expect(await response.text()).toContain('Too many failed sign-ins');
  });

  it('does not let a right password reset the count between code guesses', async () => {
    const userId = await createUser('optional', 'gus');
    const { app } = await enrolDirectly('optional', userId);
    for (let round = 0; round < 2; round += 1) {
      const s = await start('optional');
      await signIn(s, 'gus');
      for (let i = 0; i < 2; i += 1) expect((await postCode(s, 'totp', wrongCode(app))).status).toBe(400);
    }
    const s = await start('optional');
    await signIn(s, 'gus');
    expect((await postCode(s, 'totp', wrongCode(app))).status).toBe(400); // the fifth failure
    expect((await postCode(s, 'totp', codeFrom(app))).status).toBe(429);
  });

  it('refuses the code steps without the password step of this interaction', async () => {
    const userId = await createUser('optional', 'nora');
    const { app } = await enrolDirectly('optional', userId);
    const s = await start('optional');
    const current = () => totpCodeAt(app.secret, timeStep(Date.now()));
    for (const step of ['totp', 'totp-recovery', 'totp-enrol'] as const) {
      const response = await s.browser.postForm(`${s.pageUrl}/${step}`, { code: current() });
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
    }
    expect((await s.browser.get(`${s.pageUrl}/totp`)).status).toBe(400);
    expect((await s.browser.postForm(`${s.pageUrl}/totp-done`, {})).status).toBe(400);

    // Another interaction's password does not open this one's code step.
    const other = await start('optional');
    await signIn(other, 'nora');
    expect((await s.browser.postForm(`${s.pageUrl}/totp`, { code: current() })).status).toBe(400);
    // And a CSRF token is still required on the code step.
    const noCsrf = await other.browser.postForm(`${other.pageUrl}/totp`, { code: current(), csrf: 'forged' });
    expect(noCsrf.status).toBe(403);
  });

  it('puts amr into the id_token', async () => {
    const userId = await createUser('optional', 'ida');
    const { app } = await enrolDirectly('optional', userId);
    const s = await start('optional');
    await signIn(s, 'ida');
    const ok = await postCode(s, 'totp', codeFrom(app));
    const { idToken } = await complete(s, new URL(ok.location ?? '', s.pageUrl).href);
    expect(idToken.amr).toEqual(['pwd', 'otp']);
  });

  it('lets the operator remove a lost factor with `castellan user totp-reset`', async () => {
    const userId = await createUser('secure', 'lost');
    await enrolDirectly('secure', userId);
    const reset = await runCli(castellan.env, ['user', 'totp-reset', 'secure', 'LOST']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain(`${userId}: two-step verification removed`);
    expect(reset.stderr).not.toMatch(/\n\s+at /);
    expect((await castellan.running.storage.users.findById('secure', userId))?.totp).toBeUndefined();
    // The tenant requires TOTP, so the next sign-in sets it up again.
    const s = await start('secure');
    expect(await signIn(s, 'lost')).toBe(`${s.pageUrl}/totp-enrol`);

    const unknown = await runCli(castellan.env, ['user', 'totp-reset', 'secure', 'nobody']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no user "nobody"');
  });

  describe('the account security page (/t/<tenant>/account/security)', () => {
    const securityUrl = (tenant: string) => `${castellan.baseUrl}/t/${tenant}/account/security`;
    const appFrom = (html: string): App => appFromSecret(/<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(html)?.[1] ?? '');

    it('turns TOTP on with a fresh password, then needs the code too; new recovery codes replace the old; turns off', async () => {
      const userId = await createUser('optional', 'sam');
      const browser = newBrowser();
      const url = securityUrl('optional');
      const form = await browser.get(url);
      expect(form.status).toBe(200);
      expect(await form.text()).toContain('name="password"');

      const signedIn = await browser.postForm(url, { action: 'sign-in', login: 'sam', password: PASSWORD, code: '' });
      expect(signedIn.status).toBe(303);
      const cookie = signedIn.headers.getSetCookie().find((c) => c.startsWith('castellan_account=')) ?? '';
      expect(cookie).toMatch(/path=\/t\/optional\/account\/security/i);
      expect(cookie).toMatch(/httponly/i);
      expect(cookie).toMatch(/samesite=strict/i);
      const overview = await (await browser.get(url)).text();
      expect(overview).toContain('Two-step verification is <strong>off</strong>');

      // A form without the session's CSRF token is refused.
      expect((await browser.postForm(url, { action: 'enrol', csrf: 'forged' })).status).toBe(403);

      const enrol = await browser.postForm(url, { action: 'enrol' });
      const enrolHtml = await enrol.text();
      expect(enrolHtml).toMatch(/<svg [^>]*aria-label="QR code/);
      const app = appFrom(enrolHtml);
      expect((await browser.postForm(url, { action: 'confirm', code: wrongCode(app) })).status).toBe(400);
      const on = await browser.postForm(url, { action: 'confirm', code: codeFrom(app) });
      const firstCodes = [...(await on.text()).matchAll(/<li><code>([0-9A-Z-]+)<\/code><\/li>/g)].map((m) => m[1] ?? '');
      expect(firstCodes).toHaveLength(10);
      expect((await castellan.running.storage.users.findById('optional', userId))?.totp?.recoveryCodesLeft).toBe(10);

      // Sign-in now asks for a code.
      const s = await start('optional');
      expect(await signIn(s, 'sam')).toBe(`${s.pageUrl}/totp`);

      // Back on the page in a new session: the password alone is not enough any more.
      const again = newBrowser();
      await again.get(url);
      const passwordOnly = await again.postForm(url, { action: 'sign-in', login: 'sam', password: PASSWORD, code: '' });
      expect(passwordOnly.status).toBe(400);
      expect(await passwordOnly.text()).toContain('Wrong username, password or code.');
      expect((await again.postForm(url, { action: 'sign-in', login: 'sam', password: PASSWORD, code: codeFrom(app) })).status).toBe(303);
      expect(await (await again.get(url)).text()).toContain('Two-step verification is <strong>on</strong>');
      const fresh = await again.postForm(url, { action: 'recovery-codes' });
      const newCodes = [...(await fresh.text()).matchAll(/<li><code>([0-9A-Z-]+)<\/code><\/li>/g)].map((m) => m[1] ?? '');
      expect(newCodes).toHaveLength(10);
      expect(await totp.useRecoveryCode('optional', userId, firstCodes[0] ?? '')).toBe(false);
      expect(await totp.useRecoveryCode('optional', userId, newCodes[0] ?? '')).toBe(true);

      const off = await again.postForm(url, { action: 'disable' });
      expect(await off.text()).toContain('Two-step verification is <strong>off</strong>');
      expect((await castellan.running.storage.users.findById('optional', userId))?.totp).toBeUndefined();
      const signedOut = await again.postForm(url, { action: 'sign-out' });
      expect(await signedOut.text()).toContain('Signed out');
      expect((await again.postForm(url, { action: 'enrol' })).status).toBe(200); // back to the sign-in form
    });

    it('does not offer turning TOTP off where it is required, and does not exist where it is off', async () => {
      const userId = await createUser('secure', 'quinn');
      const { app } = await enrolDirectly('secure', userId);
      const browser = newBrowser();
      await browser.get(securityUrl('secure'));
      expect((await browser.postForm(securityUrl('secure'), { action: 'sign-in', login: 'quinn', password: PASSWORD, code: codeFrom(app) })).status).toBe(303);
      const overview = await (await browser.get(securityUrl('secure'))).text();
      expect(overview).toContain('cannot be turned off here');
      expect(overview).not.toContain('value="disable"');
      await browser.postForm(securityUrl('secure'), { action: 'disable' });
      expect((await castellan.running.storage.users.findById('secure', userId))?.totp).toBeDefined();

      expect((await fetch(securityUrl('plain'))).status).toBe(404);
    });

    it('locks its sign-in like the sign-in page, with the same words', async () => {
      await createUser('optional', 'vera');
      const browser = newBrowser();
      await browser.get(securityUrl('optional'));
      for (let i = 0; i < 5; i += 1) {
        expect((await browser.postForm(securityUrl('optional'), { action: 'sign-in', login: 'vera', password: `wrong-${i}`, code: '' })).status).toBe(400);
      }
      const locked = await browser.postForm(securityUrl('optional'), { action: 'sign-in', login: 'vera', password: PASSWORD, code: '' });
      expect(locked.status).toBe(429);
      expect(await locked.text()).toContain('Too many failed sign-ins');
      const s = await start('optional');
      expect((await s.browser.postForm(`${s.pageUrl}/login`, { login: 'vera', password: PASSWORD })).status).toBe(429);
    });
  });
});
