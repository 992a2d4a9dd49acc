import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TotpService } from '../../src/accounts/totp-service.ts';
import { timeStep, totpCodeAt } from '../../src/accounts/totp.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { appFromSecret, codeFrom, enrolDirectly, openLoginPage, totpServiceOf, upsertNativeClient, type LoginPage } from '../support/totp-flow.ts';

/*
 * CSRF on the TOTP steps of the sign-in (RFC 9700 §4.7; RFC 6749 §10.12): the code page, the
 * recovery code page, the enrolment page and its "done" form are posted without a token, with
 * a forged one and with another interaction's, each carrying what would otherwise succeed (the
 * right code). Each is refused with 403 and changes nothing: the code is not spent, the
 * recovery code still counts, no factor is stored, the interaction does not move on. Then the
 * same post with the page's token succeeds, so the token was the only thing missing.
 */
const CLIENT = 'totp-csrf-agent';
const REDIRECT = 'http://127.0.0.1/callback';
const PASSWORD = 'a long enough password';

describe('CSRF tokens on the TOTP steps (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let totp: TotpService;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_totp_csrf');
    for (const [id, mode] of [['secure', 'required'], ['optional', 'optional']] as const) {
      await castellan.running.storage.tenants.create({ id, displayName: id, settings: { mfa: { totp: mode } } });
      await upsertNativeClient(castellan, id, CLIENT);
    }
    totp = totpServiceOf(castellan);
  });
  afterAll(async () => castellan?.stop());

  const createUser = async (tenant: string, login: string) =>
    (await castellan.running.storage.users.create({ tenant, login, password: PASSWORD })).id;
  const start = (tenant: string) => openLoginPage(castellan, { tenant, client: CLIENT, redirectUri: REDIRECT });
  const tokenOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

  /** Posts the password; returns the step it leads to. */
  async function signIn(s: LoginPage, login: string): Promise<string> {
    const response = await s.browser.postForm(`${s.pageUrl}/login`, { login, password: PASSWORD });
    expect(response.status, await response.clone().text()).toBe(303);
    return new URL(response.headers.get('location') ?? '', s.pageUrl).href;
  }

  /** A CSRF token that is valid, but for another interaction of the same tenant. */
  async function otherInteractionsToken(tenant: string): Promise<string> {
    const other = await start(tenant);
    const token = tokenOf(await (await other.browser.get(other.pageUrl)).text());
    expect(token).not.toBe('');
    return token;
  }

  async function expectRefused(s: LoginPage, step: string, form: Record<string, string>, tenant: string): Promise<void> {
    for (const csrf of ['', 'forged', await otherInteractionsToken(tenant)]) {
      const response = await s.browser.postForm(`${s.pageUrl}/${step}`, { ...form, csrf });
      expect(response.status, `${step} with csrf "${csrf}"`).toBe(403);
      expect(response.headers.get('location')).toBeNull();
      expect(await response.text()).toContain('CSRF token');
    }
  }

  it('refuses the code and recovery code forms without their token, and spends nothing', async () => {
    const userId = await createUser('optional', 'cora');
    const { app, recoveryCodes } = await enrolDirectly(totp, 'optional', userId);
    // A step the enrolment did not use.
    const code = codeFrom(app);

    const s = await start('optional');
    const codeUrl = await signIn(s, 'cora');
    expect(codeUrl).toBe(`${s.pageUrl}/totp`);
    const codePage = await s.browser.get(codeUrl);
    expect(codePage.status).toBe(200);
    const pageToken = tokenOf(await codePage.text());
    expect(pageToken).not.toBe('');
    await expectRefused(s, 'totp', { code }, 'optional');
    await expectRefused(s, 'totp-recovery', { code: recoveryCodes[0] ?? '' }, 'optional');
    expect((await castellan.running.storage.users.findById('optional', userId))?.totp?.recoveryCodesLeft).toBe(10);
    // The very code the refused posts carried was not spent: with the page's token it signs in.
    const accepted = await s.browser.postForm(`${s.pageUrl}/totp`, { code, csrf: pageToken });
    expect(accepted.status, await accepted.clone().text()).toBe(303);

    // And the recovery code the refused posts carried still works, once.
    const again = await start('optional');
    await signIn(again, 'cora');
    const recoveryPage = await again.browser.get(`${again.pageUrl}/totp-recovery`);
    expect(recoveryPage.status).toBe(200);
    const recovered = await again.browser.postForm(`${again.pageUrl}/totp-recovery`, { code: recoveryCodes[0] ?? '', csrf: tokenOf(await recoveryPage.text()) });
    expect(recovered.status, await recovered.clone().text()).toBe(303);
    expect((await castellan.running.storage.users.findById('optional', userId))?.totp?.recoveryCodesLeft).toBe(9);
  });

  it('refuses the enrolment and its "done" form without their token, and stores no factor', async () => {
    const userId = await createUser('secure', 'enzo');
    const s = await start('secure');
    const enrolUrl = await signIn(s, 'enzo');
    expect(enrolUrl).toBe(`${s.pageUrl}/totp-enrol`);
    const html = await (await s.browser.get(enrolUrl)).text();
    const pageToken = tokenOf(html);
    const app = appFromSecret(/<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(html)?.[1] ?? '');
    const code = totpCodeAt(app.secret, timeStep(Date.now()));

    await expectRefused(s, 'totp-enrol', { code }, 'secure');
    expect((await castellan.running.storage.users.findById('secure', userId))?.totp).toBeUndefined();
    const enrolled = await s.browser.postForm(`${s.pageUrl}/totp-enrol`, { code, csrf: pageToken });
    expect(enrolled.status, await enrolled.clone().text()).toBe(200);
    expect((await castellan.running.storage.users.findById('secure', userId))?.totp?.recoveryCodesLeft).toBe(10);

    await expectRefused(s, 'totp-done', {}, 'secure');
    const done = await s.browser.postForm(`${s.pageUrl}/totp-done`, { csrf: pageToken });
    expect(done.status).toBe(303);
  });
});
