import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TotpService } from '../../src/accounts/totp-service.ts';
import { linkedUserId } from '../../src/interactions/upstream/upstream-accounts.ts';
import { createMemoryAuditSink, signInMethodOf, type AuditEvent } from '../../src/observability/audit.ts';
import { runCli } from '../support/cli.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { followAuthorization, locationOf, newBrowser, type Browser } from '../support/oauth.ts';
import { appFromSecret, codeFrom, enrolDirectly as enrol, openLoginPage, totpServiceOf, upsertNativeClient, wrongCode } from '../support/totp-flow.ts';

/*
 * Audit events of human sign-in on FerretDB + Redis: sign-in success and failure per method
 * (pwd, otp, recovery; fed by its amr), the lock, TOTP turned on / off / new recovery codes
 * on the account page, the operator's reset, and a new upstream link. None carries a
 * password, a code, or the login name typed for a failed attempt.
 */

const TENANT = 'audited';
/** Another tenant of the same Castellan, the upstream IdP of TENANT ("Sign in with Partner"). */
const UPSTREAM = 'audit-upstream';
const UPSTREAM_CLIENT = 'audited-tenant';
const CLIENT = 'audit-agent';
const REDIRECT = 'http://127.0.0.1:53910/callback';
const PASSWORD = 'a long enough password';

describe('audit events of sign-in and second factors (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let totp: TotpService;

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'sign_in_audit');
    const { storage } = castellan.running;
    await storage.tenants.create({ id: UPSTREAM, displayName: 'Partner', settings: {} });
    await storage.modelStores(UPSTREAM).durable.upsert('Client', UPSTREAM_CLIENT, {
      client_id: UPSTREAM_CLIENT, token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'],
      redirect_uris: [`${castellan.baseUrl}/t/${TENANT}/upstream/callback`],
    });
    await storage.users.create({ tenant: UPSTREAM, login: 'uma', password: PASSWORD, claims: { name: 'Uma Upstream' } });
    await storage.tenants.create({
      id: TENANT, displayName: 'Audited Corp',
      settings: {
        mfa: { totp: 'optional' },
        upstreamIdps: [{ id: 'partner', name: 'Partner', issuer: `${castellan.baseUrl}/t/${UPSTREAM}`, clientId: UPSTREAM_CLIENT }],
      },
    });
    await upsertNativeClient(castellan, TENANT, CLIENT);
    totp = totpServiceOf(castellan);
  });
  afterAll(async () => castellan?.stop());

  const events = (type: string, userId?: string): AuditEvent[] =>
    castellan.audit.filter((e) => e.tenant === TENANT && e.type === type && (userId === undefined || e.userId === userId));

  async function createUser(login: string): Promise<string> {
    return (await castellan.running.storage.users.create({ tenant: TENANT, login, password: PASSWORD })).id;
  }

  const enrolDirectly = (userId: string) => enrol(totp, TENANT, userId);

  /** A new authorization's login page; returns its URL and the browser. */
  const start = (): Promise<{ browser: Browser; pageUrl: string }> => openLoginPage(castellan, { tenant: TENANT, client: CLIENT, redirectUri: REDIRECT });

  /** Follows redirects from `url` until the page is not a redirect (the resume ends the interaction). */
  async function follow(browser: Browser, url: string): Promise<void> {
    let next = url;
    for (let i = 0; i < 6 && !next.startsWith(REDIRECT); i += 1) {
      const response = await browser.get(next);
      if (response.status < 300 || response.status >= 400) return;
      next = new URL(response.headers.get('location') ?? '', next).href;
    }
  }

  it('records a password sign-in: failure without user or login name, success with the user id and address', async () => {
    const userId = await createUser('pat');
    const { browser, pageUrl } = await start();
    const wrong = await browser.postForm(`${pageUrl}/login`, { login: 'pat', password: 'not the password' });
    expect(wrong.status).toBe(400);
    const failure = events('sign_in').find((e) => e.outcome === 'failure' && e.method === 'pwd');
    expect(failure).toMatchObject({ outcome: 'failure', error: 'invalid_credentials', method: 'pwd', place: 'authorization' });
    expect(failure?.userId).toBeUndefined();
    expect(typeof failure?.ip).toBe('string');

    const right = await browser.postForm(`${pageUrl}/login`, { login: 'pat', password: PASSWORD });
    expect(right.status).toBe(303);
    expect(events('sign_in', userId)).toEqual([]); // not until the authorization resumes
    await follow(browser, new URL(right.headers.get('location') ?? '', pageUrl).href);
    expect(events('sign_in', userId)).toEqual([expect.objectContaining({ outcome: 'success', method: 'pwd', userId, ip: failure?.ip })]);

    const all = JSON.stringify(castellan.audit);
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain('not the password');
    expect(all).not.toContain('"pat"');
  });

  it('records a lock, for an unknown name too, without the name typed', async () => {
    const { browser, pageUrl } = await start();
    for (let i = 0; i < 6; i += 1) await browser.postForm(`${pageUrl}/login`, { login: 'no-such-user', password: `guess-${i}` });
    const locked = events('sign_in_locked');
    expect(locked).toHaveLength(1);
    expect(locked[0]).toMatchObject({ outcome: 'failure', error: 'locked', method: 'pwd' });
    expect(locked[0]?.userId).toBeUndefined();
    expect(JSON.stringify(castellan.audit)).not.toContain('no-such-user');
    expect(JSON.stringify(castellan.audit)).not.toContain('guess-');
  });

  it('records the second factor: a wrong code with the known user, then otp and recovery successes', async () => {
    const userId = await createUser('tess');
    const { app, recoveryCodes } = await enrolDirectly(userId);

    const first = await start();
    expect((await first.browser.postForm(`${first.pageUrl}/login`, { login: 'tess', password: PASSWORD })).status).toBe(303);
    const bad = wrongCode(app);
    expect((await first.browser.postForm(`${first.pageUrl}/totp`, { code: bad })).status).toBe(400);
    expect(events('sign_in', userId)).toEqual([expect.objectContaining({ outcome: 'failure', error: 'invalid_credentials', method: 'otp', userId })]);
    const good = codeFrom(app);
    const ok = await first.browser.postForm(`${first.pageUrl}/totp`, { code: good });
    expect(ok.status).toBe(303);
    await follow(first.browser, new URL(ok.headers.get('location') ?? '', first.pageUrl).href);
    expect(events('sign_in', userId).filter((e) => e.outcome === 'success')).toEqual([expect.objectContaining({ method: 'otp', userId })]);

    const second = await start();
    await second.browser.postForm(`${second.pageUrl}/login`, { login: 'tess', password: PASSWORD });
    const recovery = await second.browser.postForm(`${second.pageUrl}/totp-recovery`, { code: recoveryCodes[0] ?? '' });
    expect(recovery.status).toBe(303);
    await follow(second.browser, new URL(recovery.headers.get('location') ?? '', second.pageUrl).href);
    expect(events('sign_in', userId).filter((e) => e.outcome === 'success').map((e) => e.method)).toEqual(['otp', 'recovery']);

    const all = JSON.stringify(castellan.audit);
    for (const secret of [bad, good, recoveryCodes[0] ?? 'none']) expect(all).not.toContain(secret);
  });

  it('records TOTP turned on, new recovery codes and TOTP turned off on the account page, and its sign-ins', async () => {
    const userId = await createUser('una');
    const browser = newBrowser();
    const url = `${castellan.baseUrl}/t/${TENANT}/account/security`;
    await browser.get(url);
    expect((await browser.postForm(url, { action: 'sign-in', login: 'una', password: 'wrong', code: '' })).status).toBe(400);
    expect((await browser.postForm(url, { action: 'sign-in', login: 'una', password: PASSWORD, code: '' })).status).toBe(303);
    const signIns = castellan.audit.filter((e) => e.tenant === TENANT && e.type === 'sign_in' && e.place === 'account_security');
    expect(signIns.map((e) => [e.outcome, e.userId])).toEqual([['failure', undefined], ['success', userId]]);
    expect(await (await browser.get(url)).text()).toContain('Two-step verification is <strong>off</strong>');

    const enrolHtml = await (await browser.postForm(url, { action: 'enrol' })).text();
    const secretText = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(enrolHtml)?.[1] ?? '';
    const app = appFromSecret(secretText);
    expect(events('totp_enabled', userId)).toEqual([]);
    expect((await browser.postForm(url, { action: 'confirm', code: codeFrom(app) })).status).toBe(200);
    expect(events('totp_enabled', userId)).toEqual([expect.objectContaining({ outcome: 'success', by: 'user', userId })]);
    const regenerated = await (await browser.postForm(url, { action: 'recovery-codes' })).text();
    expect(events('totp_recovery_codes_regenerated', userId)).toHaveLength(1);
    await browser.postForm(url, { action: 'disable' });
    expect(events('totp_disabled', userId)).toEqual([expect.objectContaining({ by: 'user', userId })]);

    const codes = [...regenerated.matchAll(/<li><code>([0-9A-Z-]+)<\/code><\/li>/g)].map((m) => m[1] ?? '');
    expect(codes).toHaveLength(10);
    const all = JSON.stringify(castellan.audit);
    for (const code of codes) expect(all).not.toContain(code);
    expect(all).not.toContain(secretText.replaceAll(' ', ''));
  });

  it("records the operator's reset from the command line as one audit log line", async () => {
    const userId = await createUser('vic');
    await enrolDirectly(userId);
    const reset = await runCli(castellan.env, ['user', 'totp-reset', TENANT, 'vic']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain(`${userId}: two-step verification removed`);
    // Results on stdout, log and audit lines on stderr (the CLI's rule).
    expect(reset.stdout.split('\n').filter((l) => l.startsWith('{'))).toEqual([]);
    const lines = reset.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.audit === true)).toEqual([expect.objectContaining({ audit: true, type: 'totp_reset', tenant: TENANT, userId, by: 'operator', outcome: 'success' })]);
  });

  it('records a federated sign-in (method fed) and the new link it made', async () => {
    const { browser, pageUrl } = await start();
    const redirect = await browser.postForm(`${pageUrl}/upstream`, { idp: 'partner' });
    expect(redirect.status).toBe(303);
    const callbackUri = `${castellan.baseUrl}/t/${TENANT}/upstream/callback`;
    const params = await followAuthorization(browser, locationOf(redirect, pageUrl), callbackUri, 'uma', PASSWORD);
    await follow(browser, `${callbackUri}?${params}`);
    const [linked] = events('upstream_linked');
    expect(linked).toMatchObject({ outcome: 'success', idp: 'partner', issuer: `${castellan.baseUrl}/t/${UPSTREAM}` });
    expect(events('sign_in').filter((e) => e.method === 'fed')).toEqual([expect.objectContaining({ outcome: 'success', userId: linked?.userId })]);
  });

  it('records a new upstream link once, not the later sign-ins through it', async () => {
    const { storage } = castellan.running;
    const audit = createMemoryAuditSink();
    const deps = { accounts: storage.users, upstreamLinks: storage.upstreamLinks, audit };
    const identity = { tenant: TENANT, idp: 'acme', issuer: 'https://sso.acme.example', subject: 'sub-77' };
    const first = await linkedUserId(deps, identity, async () => ({ email: 'w@acme.example' }));
    expect(first.created).toBe(true);
    await linkedUserId(deps, identity, async () => ({}));
    expect(audit.events).toEqual([{ type: 'upstream_linked', tenant: TENANT, outcome: 'success', idp: 'acme', issuer: 'https://sso.acme.example', userId: first.userId }]);
  });

  it('names the method of a sign-in from its amr, fed included', () => {
    expect(signInMethodOf(['pwd'])).toBe('pwd');
    expect(signInMethodOf(['pwd', 'otp'])).toBe('otp');
    expect(signInMethodOf(['pwd', 'mfa'])).toBe('recovery');
    expect(signInMethodOf(['fed'])).toBe('fed');
    expect(signInMethodOf(undefined)).toBeUndefined();
    expect(signInMethodOf(['hwk'])).toBeUndefined();
  });
});
