import { z } from 'zod';
import { InvalidRequestError } from '../errors/errors.ts';
import { signInEvent } from '../observability/audit.ts';
import { csrfField } from './csrf.ts';
import { interactionPath, type Step, type StepRequest } from './interaction-step.ts';
import { completePasswordLogin } from './mfa/second-factor.ts';
import { upstreamChoices } from './upstream/upstream-choices.ts';
import { escapeHtml, pageLook, renderPage } from './views.ts';

const loginForm = z.object({
  login: z.string().trim().min(1).max(256),
  password: z.string().min(1).max(1024),
});

export function renderLoginPage(step: StepRequest, error?: string): void {
  const { ctx, runtime, details } = step;
  const look = pageLook(runtime.tenantId, runtime.settings);
  const title = `Sign in to ${look.name}`;
  const base = interactionPath(runtime, details);
  const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint : '';
  renderPage(ctx, look, title, `<h1>${escapeHtml(title)}</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(base)}/login">${csrfField(runtime.csrfKey, details.uid)}
<label for="login">Username</label><input id="login" name="login" type="text" autocomplete="username" required autofocus value="${escapeHtml(hint)}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>
${runtime.settings.mfa.totp === 'off' ? '' : `<p><small><a href="/t/${escapeHtml(runtime.tenantId)}/account/security">Manage two-step verification</a></small></p>`}
${upstreamChoices(step)}
<form method="post" action="${escapeHtml(base)}/abort">${csrfField(runtime.csrfKey, details.uid)}<button class="secondary" type="submit">Cancel</button></form>`);
}

/** The password form: brute-force limits live in the LoginCheck (src/accounts/login-throttle.ts). */
export const loginStep: Step = {
  async POST(step) {
    const { ctx, runtime, details, deps, form } = step;
    if (details.prompt.name !== 'login') throw new InvalidRequestError('this interaction is not asking for a login');
    const parsed = loginForm.safeParse({ login: form.get('login') ?? '', password: form.get('password') ?? '' });
    const outcome = parsed.success
      ? await deps.checkLogin(runtime.tenantId, parsed.data.login, parsed.data.password, ctx.ip)
      : { ok: false as const, reason: 'invalid' as const };
    if (outcome.ok) return completePasswordLogin(step, outcome.user);
    // No user id and no login name: nothing says whether the name typed is an account.
    await deps.audit.record(signInEvent({ tenant: runtime.tenantId, method: 'pwd', ip: ctx.ip }, outcome.reason));
    if (outcome.reason === 'locked') {
      // The same words whether or not the account exists.
      ctx.status = 429;
      ctx.set('Retry-After', String(outcome.retryAfterSeconds));
      const minutes = Math.max(1, Math.ceil(outcome.retryAfterSeconds / 60));
      return renderLoginPage(step, `Too many failed sign-ins. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`);
    }
    ctx.status = 400;
    return renderLoginPage(step, 'Wrong username or password.');
  },
};
