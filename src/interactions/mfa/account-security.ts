import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import { z } from 'zod';
import type { AccountService, User } from '../../accounts/accounts.ts';
import type { PendingTotp } from '../../accounts/totp-service.ts';
import { MethodNotAllowedError, NotFoundError } from '../../errors/errors.ts';
import { readFormBody } from '../../http/request-body.ts';
import { signInEvent, totpEvent, type AuditSink } from '../../observability/audit.ts';
import type { ModelStores } from '../../storage/oidc-adapter.ts';
import type { Payload } from '../../storage/model-store.ts';
import type { TenantRuntime } from '../../tenants/tenant-registry.ts';
import { checkCsrfToken } from '../csrf.ts';
import { escapeHtml, pageLook } from '../views.ts';
import type { MfaDeps } from './mfa-deps.ts';
import { codeInput, enrolmentBody, errorLine, postForm, recoveryCodesBody, throttleFailure, titledPage } from './totp-pages.ts';

/**
 * `/t/<tenant>/account/security`: where a user turns TOTP on or off and gets new recovery
 * codes. It asks for the password (and the current code, if TOTP is on) afresh, under the
 * same throttle as sign-in, then keeps a short server-side session: a random id in an
 * HttpOnly, SameSite=Strict cookie scoped to this path, the record in the tenant's
 * ephemeral store. Every form carries a CSRF token bound to that session (or, before it,
 * to a random cookie), on top of SameSite=Strict.
 */

export interface AccountSecurityDeps {
  accounts: AccountService;
  modelStores: (tenant: string) => ModelStores;
  mfa: MfaDeps;
  audit: AuditSink;
}

const SESSION_COOKIE = 'castellan_account';
const SIGN_IN_COOKIE = 'castellan_account_form';
const SESSION_SECONDS = 10 * 60;

const sessionSchema = z.object({
  castellanAccount: z.literal(1),
  accountId: z.string().min(1),
  login: z.string().min(1),
  pending: z.object({ enrolmentId: z.string(), secret: z.custom<PendingTotp['secret']>((v) => typeof v === 'object' && v !== null) }).optional(),
});
type AccountSession = z.output<typeof sessionSchema>;

const signInForm = z.object({
  login: z.string().trim().min(1).max(256),
  password: z.string().min(1).max(1024),
  code: z.string().max(64),
});

interface Request {
  ctx: Context;
  runtime: TenantRuntime;
  deps: AccountSecurityDeps;
  path: string;
}

/** An id no oidc-provider Interaction can have (their uids hold no '.'). */
const recordId = (sessionId: string) => `account.${sessionId}`;
const randomId = () => randomBytes(32).toString('base64url');
const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

function setCookie(r: Request, name: string, value: string | null, seconds: number): void {
  // An https issuer means TLS ends in front of us even when no trusted proxy says so: the
  // cookie is Secure as oidc-provider's are (the jar must be told, or it refuses to send it).
  const secure = r.ctx.secure || r.runtime.issuer.startsWith('https:');
  if (secure) r.ctx.cookies.secure = true;
  r.ctx.cookies.set(name, value, {
    path: r.path, httpOnly: true, sameSite: 'strict', secure, signed: false, overwrite: true, maxAge: seconds * 1000,
  });
}

function page(r: Request, title: string, body: string): void {
  titledPage(r.ctx, r.runtime, title, body);
}

async function loadSession(r: Request): Promise<{ id: string; session: AccountSession } | undefined> {
  const id = r.ctx.cookies.get(SESSION_COOKIE);
  if (id === undefined || !ID_PATTERN.test(id)) return undefined;
  const found = await r.deps.modelStores(r.runtime.tenantId).ephemeral.find('Interaction', recordId(id));
  const parsed = sessionSchema.safeParse(found);
  return parsed.success ? { id, session: parsed.data } : undefined;
}

async function saveSession(r: Request, id: string, session: AccountSession): Promise<void> {
  await r.deps.modelStores(r.runtime.tenantId).ephemeral.upsert('Interaction', recordId(id), session as unknown as Payload, SESSION_SECONDS);
}

function renderSignIn(r: Request, error?: string): void {
  const formId = randomId();
  setCookie(r, SIGN_IN_COOKIE, formId, SESSION_SECONDS);
  page(r, 'Sign in to manage two-step verification', `${errorLine(error)}
${postForm(r.path, r.runtime.csrfKey, `account-form.${formId}`, `<input type="hidden" name="action" value="sign-in">
<label for="login">Username</label><input id="login" name="login" type="text" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<label for="code">Verification code, if two-step verification is on</label>
<input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9 ]*" maxlength="8" autocomplete="one-time-code">`, 'Continue')}`);
}

function actionForm(r: Request, sessionId: string, action: string, button: string, inner = '', secondary = false): string {
  return postForm(r.path, r.runtime.csrfKey, `account.${sessionId}`, `<input type="hidden" name="action" value="${escapeHtml(action)}">${inner}`, button, secondary);
}

function renderOverview(r: Request, sessionId: string, user: User, notice?: string): void {
  const required = r.runtime.settings.mfa.totp === 'required';
  const status = user.totp
    ? `<p>Two-step verification is <strong>on</strong> for ${escapeHtml(user.login)}. Recovery codes left: ${user.totp.recoveryCodesLeft}.</p>
${actionForm(r, sessionId, 'recovery-codes', 'Get new recovery codes')}
${required ? '<p>This service requires two-step verification, so it cannot be turned off here.</p>' : actionForm(r, sessionId, 'disable', 'Turn off two-step verification', '', true)}`
    : `<p>Two-step verification is <strong>off</strong> for ${escapeHtml(user.login)}. With it on, signing in also asks for a code from an authenticator app.</p>
${actionForm(r, sessionId, 'enrol', 'Set up two-step verification')}`;
  page(r, 'Two-step verification', `${notice ? `<p role="status">${escapeHtml(notice)}</p>` : ''}${status}
${actionForm(r, sessionId, 'sign-out', 'Done', '', true)}`);
}

async function renderEnrol(r: Request, sessionId: string, session: AccountSession, pending: PendingTotp, error?: string): Promise<void> {
  const issuer = pageLook(r.runtime.tenantId, r.runtime.settings).name;
  const { secret, uri } = await r.deps.mfa.totp.reveal(r.runtime.tenantId, session.accountId, pending, issuer, session.login);
  page(r, 'Set up two-step verification', `${errorLine(error)}
${await enrolmentBody(secret, uri, issuer)}
${actionForm(r, sessionId, 'confirm', 'Turn on', codeInput('Code from the app'))}
${actionForm(r, sessionId, 'overview', 'Cancel', '', true)}`);
}

async function signIn(r: Request, form: URLSearchParams): Promise<void> {
  const formId = r.ctx.cookies.get(SIGN_IN_COOKIE) ?? '';
  checkCsrfToken(r.runtime.csrfKey, `account-form.${formId}`, ID_PATTERN.test(formId) ? form.get('csrf') : null);
  const parsed = signInForm.safeParse({ login: form.get('login') ?? '', password: form.get('password') ?? '', code: form.get('code') ?? '' });
  const { tenantId } = r.runtime;
  const { mfa, accounts } = r.deps;
  // The account, once its password is right: a wrong code after it is that account's failure.
  let known: User | undefined;
  const outcome = parsed.success
    ? await mfa.throttle.attempt(tenantId, parsed.data.login, r.ctx.ip, async () => {
      const user = await accounts.verifyPassword(tenantId, parsed.data.login, parsed.data.password);
      if (!user) return undefined;
      known = user;
      // With TOTP on, the password alone must not turn it off: the current code is part of the check.
      if (user.totp && !(await mfa.totp.verify(tenantId, user.id, parsed.data.code))) return undefined;
      return user;
    })
    : { ok: false as const, reason: 'invalid' as const };
  const signedIn = outcome.ok ? outcome.value : known;
  const facts = { tenant: tenantId, method: signedIn?.totp ? 'otp' as const : 'pwd' as const, userId: signedIn?.id, ip: r.ctx.ip, place: 'account_security' as const };
  await r.deps.audit.record(signInEvent(facts, outcome.ok ? 'success' : outcome.reason));
  if (!outcome.ok) return renderSignIn(r, throttleFailure(r.ctx, outcome, 'Wrong username, password or code.'));
  await mfa.throttle.clear(tenantId, outcome.value.login);
  const sessionId = randomId();
  await saveSession(r, sessionId, { castellanAccount: 1, accountId: outcome.value.id, login: outcome.value.login });
  setCookie(r, SIGN_IN_COOKIE, null, 0);
  setCookie(r, SESSION_COOKIE, sessionId, SESSION_SECONDS);
  r.ctx.status = 303;
  r.ctx.redirect(r.path);
}

async function act(r: Request, form: URLSearchParams): Promise<void> {
  const found = await loadSession(r);
  if (!found) return renderSignIn(r, 'Your session ended; sign in again.');
  const { id, session } = found;
  checkCsrfToken(r.runtime.csrfKey, `account.${id}`, form.get('csrf'));
  const { tenantId } = r.runtime;
  const { totp } = r.deps.mfa;
  const user = await r.deps.accounts.findById(tenantId, session.accountId);
  if (!user) return renderSignIn(r);
  switch (form.get('action')) {
    case 'enrol': {
      const pending = await totp.begin(tenantId, user.id);
      await saveSession(r, id, { ...session, pending });
      return renderEnrol(r, id, session, pending);
    }
    case 'confirm': {
      if (!session.pending) return renderOverview(r, id, user);
      const codes = await totp.confirm(tenantId, user.id, session.pending, (form.get('code') ?? '').slice(0, 64));
      if (!codes) {
        r.ctx.status = 400;
        return renderEnrol(r, id, session, session.pending, 'That code is not right. Check the app shows the account just added, and try the next code.');
      }
      await r.deps.audit.record(totpEvent(tenantId, user.id, 'totp_enabled', 'user', r.ctx.ip));
      const { pending: _done, ...rest } = session;
      await saveSession(r, id, rest);
      return page(r, 'Two-step verification is on', `${recoveryCodesBody(codes)}${actionForm(r, id, 'overview', 'I saved them')}`);
    }
    case 'recovery-codes': {
      const codes = await totp.replaceRecoveryCodes(tenantId, user.id);
      if (!codes) return renderOverview(r, id, user);
      await r.deps.audit.record(totpEvent(tenantId, user.id, 'totp_recovery_codes_regenerated', 'user', r.ctx.ip));
      return page(r, 'New recovery codes', `<p>The old recovery codes no longer work.</p>${recoveryCodesBody(codes)}${actionForm(r, id, 'overview', 'I saved them')}`);
    }
    case 'disable': {
      if (r.runtime.settings.mfa.totp === 'required') return renderOverview(r, id, user);
      if (await totp.disable(tenantId, user.id)) await r.deps.audit.record(totpEvent(tenantId, user.id, 'totp_disabled', 'user', r.ctx.ip));
      return renderOverview(r, id, (await r.deps.accounts.findById(tenantId, user.id)) ?? user, 'Two-step verification is off.');
    }
    case 'sign-out': {
      await r.deps.modelStores(tenantId).ephemeral.destroy('Interaction', recordId(id));
      setCookie(r, SESSION_COOKIE, null, 0);
      return page(r, 'Signed out', `<p>You can close this page.</p><p><a href="${escapeHtml(r.path)}">Manage two-step verification again</a></p>`);
    }
    default:
      return renderOverview(r, id, user);
  }
}

export async function handleAccountSecurity(ctx: Context, runtime: TenantRuntime, deps: AccountSecurityDeps): Promise<void> {
  if (runtime.settings.mfa.totp === 'off') throw new NotFoundError('this tenant does not use two-step verification');
  const r: Request = { ctx, runtime, deps, path: `/t/${runtime.tenantId}/account/security` };
  if (ctx.method === 'GET') {
    const found = await loadSession(r);
    const user = found && (await deps.accounts.findById(runtime.tenantId, found.session.accountId));
    return found && user ? renderOverview(r, found.id, user) : renderSignIn(r);
  }
  if (ctx.method !== 'POST') throw new MethodNotAllowedError(['GET', 'POST']);
  const form = await readFormBody(ctx);
  return form.get('action') === 'sign-in' ? signIn(r, form) : act(r, form);
}
