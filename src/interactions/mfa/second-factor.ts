import { z } from 'zod';
import type { User } from '../../accounts/accounts.ts';
import type { PendingTotp } from '../../accounts/totp-service.ts';
import { InvalidRequestError } from '../../errors/errors.ts';
import { signInEvent, totpEvent, type SignInMethod } from '../../observability/audit.ts';
import type { Payload } from '../../storage/model-store.ts';
import { finishInteraction, interactionPath, type Step, type StepRequest } from '../interaction-step.ts';
import { escapeHtml, pageLook } from '../views.ts';
import { codeInput, enrolmentBody, errorLine, postForm, recoveryCodesBody, recoveryInput, throttleFailure, titledPage } from './totp-pages.ts';

/**
 * The second factor of a password sign-in (RFC 6238 TOTP). Between the password and the
 * code, the state lives server-side in the tenant's ephemeral store, keyed by the
 * interaction uid and no longer than the interaction: the code steps refuse without it, so
 * nobody reaches them without the password, and no hidden field carries who signed in.
 */

/** RFC 8176: "otp" names RFC 4226/6238 codes; a recovery code is none, so such a login says "mfa". */
const AMR_TOTP = ['pwd', 'otp'];
const AMR_RECOVERY = ['pwd', 'mfa'];
/** The state never outlives the interaction, nor this. */
const MAX_STATE_SECONDS = 15 * 60;

const stateSchema = z.object({
  castellanMfa: z.literal(1),
  accountId: z.string().min(1),
  /** The login name as the throttle counts it. */
  login: z.string().min(1),
  /** code: TOTP asked; enrol: a secret offered (sealed); enrolled: recovery codes shown, login may finish. */
  stage: z.enum(['code', 'enrol', 'enrolled']),
  pending: z.object({ enrolmentId: z.string(), secret: z.custom<PendingTotp['secret']>((v) => typeof v === 'object' && v !== null) }).optional(),
});
type MfaState = z.output<typeof stateSchema>;

/** An id no oidc-provider Interaction can have (their uids hold no '.'). */
const stateId = (uid: string) => `mfa.${uid}`;

async function saveState(step: StepRequest, state: MfaState): Promise<void> {
  const remaining = Math.min(MAX_STATE_SECONDS, step.details.exp - Math.floor(Date.now() / 1000));
  if (remaining <= 0) throw new InvalidRequestError('the sign-in has expired; start again');
  await step.deps.modelStores(step.runtime.tenantId).ephemeral.upsert('Interaction', stateId(step.details.uid), state as unknown as Payload, remaining);
}

/** The state of this interaction at one of `stages`, or a refusal: the password comes first. */
async function requireState(step: StepRequest, ...stages: MfaState['stage'][]): Promise<MfaState> {
  if (step.details.prompt.name !== 'login') throw new InvalidRequestError('this interaction is not asking for a login');
  const found = await step.deps.modelStores(step.runtime.tenantId).ephemeral.find('Interaction', stateId(step.details.uid));
  const state = stateSchema.safeParse(found);
  if (!state.success || !stages.includes(state.data.stage)) throw new InvalidRequestError('sign in with your password first');
  return state.data;
}

async function finish(step: StepRequest, state: MfaState, amr: string[]): Promise<void> {
  await step.deps.modelStores(step.runtime.tenantId).ephemeral.destroy('Interaction', stateId(step.details.uid));
  await step.deps.mfa.throttle.clear(step.runtime.tenantId, state.login);
  return finishInteraction(step.ctx, step.runtime.provider, { login: { accountId: state.accountId, amr } });
}

function redirectTo(step: StepRequest, name: string): void {
  step.ctx.status = 303;
  step.ctx.redirect(`${interactionPath(step.runtime, step.details)}/${name}`);
}

/**
 * Called once the password is right. Depending on the tenant's mfa.totp and the user, the
 * login is done, or a code is asked, or (required, not enrolled) the user enrols first.
 */
export async function completePasswordLogin(step: StepRequest, signedIn: Pick<User, 'id'>): Promise<void> {
  const { runtime, deps } = step;
  const user = await deps.accounts.findById(runtime.tenantId, signedIn.id);
  if (!user) throw new InvalidRequestError('sign in with your password first');
  const mode = runtime.settings.mfa.totp;
  const base = { castellanMfa: 1 as const, accountId: user.id, login: user.login };
  if (mode !== 'off' && user.totp) {
    await saveState(step, { ...base, stage: 'code' });
    return redirectTo(step, 'totp');
  }
  if (mode === 'required') {
    await saveState(step, { ...base, stage: 'enrol', pending: await deps.mfa.totp.begin(runtime.tenantId, user.id) });
    return redirectTo(step, 'totp-enrol');
  }
  await deps.mfa.throttle.clear(runtime.tenantId, user.login);
  return finishInteraction(step.ctx, runtime.provider, { login: { accountId: user.id, amr: ['pwd'] } });
}

function page(step: StepRequest, title: string, body: string): void {
  titledPage(step.ctx, step.runtime, title, body);
}

function renderCodePage(step: StepRequest, error?: string): void {
  const { runtime, details } = step;
  const base = interactionPath(runtime, details);
  page(step, 'Enter your verification code', `${errorLine(error)}
<p>Open your authenticator app and enter the 6-digit code it shows for ${escapeHtml(pageLook(runtime.tenantId, runtime.settings).name)}.</p>
${postForm(`${base}/totp`, runtime.csrfKey, details.uid, codeInput('Verification code'), 'Verify')}
<p><a href="${escapeHtml(base)}/totp-recovery">Lost your phone? Use a recovery code</a></p>
${postForm(`${base}/abort`, runtime.csrfKey, details.uid, '', 'Cancel', true)}`);
}

function renderRecoveryPage(step: StepRequest, error?: string): void {
  const { runtime, details } = step;
  const base = interactionPath(runtime, details);
  page(step, 'Use a recovery code', `${errorLine(error)}
<p>Enter one of the recovery codes you saved when you set up two-step verification. Each code works once.</p>
${postForm(`${base}/totp-recovery`, runtime.csrfKey, details.uid, recoveryInput(), 'Sign in')}
<p><a href="${escapeHtml(base)}/totp">Use a code from your authenticator app instead</a></p>
${postForm(`${base}/abort`, runtime.csrfKey, details.uid, '', 'Cancel', true)}`);
}

async function renderEnrolPage(step: StepRequest, state: MfaState, error?: string): Promise<void> {
  const { runtime, details, deps } = step;
  if (!state.pending) throw new InvalidRequestError('sign in with your password first');
  const base = interactionPath(runtime, details);
  const issuer = pageLook(runtime.tenantId, runtime.settings).name;
  const { secret, uri } = await deps.mfa.totp.reveal(runtime.tenantId, state.accountId, state.pending, issuer, state.login);
  page(step, 'Set up two-step verification', `${errorLine(error)}
<p>${escapeHtml(issuer)} asks for a code from an authenticator app each time you sign in.</p>
${await enrolmentBody(secret, uri, issuer)}
${postForm(`${base}/totp-enrol`, runtime.csrfKey, details.uid, codeInput('Code from the app'), 'Turn on and continue')}
${postForm(`${base}/abort`, runtime.csrfKey, details.uid, '', 'Cancel', true)}`);
}

const codeForm = (form: URLSearchParams) => (form.get('code') ?? '').slice(0, 64);

/** A wrong or refused second factor; the account is known here (its password was right). */
async function recordFailure(step: StepRequest, state: MfaState, method: SignInMethod, reason: 'invalid' | 'locked'): Promise<void> {
  await step.deps.audit.record(signInEvent({ tenant: step.runtime.tenantId, method, userId: state.accountId, ip: step.ctx.ip }, reason));
}

/** The second-factor steps of an interaction, by name. */
export const secondFactorSteps: Record<string, Step> = {
  totp: {
    async GET(step) {
      await requireState(step, 'code');
      renderCodePage(step);
    },
    async POST(step) {
      const state = await requireState(step, 'code');
      const { runtime, deps, ctx, form } = step;
      const code = codeForm(form);
      const outcome = await deps.mfa.throttle.attempt(runtime.tenantId, state.login, ctx.ip,
        async () => ((await deps.mfa.totp.verify(runtime.tenantId, state.accountId, code)) ? true : undefined));
      if (outcome.ok) return finish(step, state, AMR_TOTP);
      await recordFailure(step, state, 'otp', outcome.reason);
      renderCodePage(step, throttleFailure(step.ctx, outcome, 'That code is not right, or was already used. Wait for the next one and try again.'));
    },
  },
  'totp-recovery': {
    async GET(step) {
      await requireState(step, 'code');
      renderRecoveryPage(step);
    },
    async POST(step) {
      const state = await requireState(step, 'code');
      const { runtime, deps, ctx, form } = step;
      const code = codeForm(form);
      const outcome = await deps.mfa.throttle.attempt(runtime.tenantId, state.login, ctx.ip,
        async () => ((await deps.mfa.totp.useRecoveryCode(runtime.tenantId, state.accountId, code)) ? true : undefined));
      if (outcome.ok) return finish(step, state, AMR_RECOVERY);
      await recordFailure(step, state, 'recovery', outcome.reason);
      renderRecoveryPage(step, throttleFailure(step.ctx, outcome, 'That recovery code is not right, or was already used.'));
    },
  },
  'totp-enrol': {
    async GET(step) {
      await renderEnrolPage(step, await requireState(step, 'enrol'));
    },
    async POST(step) {
      const state = await requireState(step, 'enrol');
      const { runtime, details, deps } = step;
      if (!state.pending) throw new InvalidRequestError('sign in with your password first');
      // Not throttled: the person has just proved the password and is choosing the secret.
      const codes = await deps.mfa.totp.confirm(runtime.tenantId, state.accountId, state.pending, codeForm(step.form));
      if (!codes) {
        step.ctx.status = 400;
        return renderEnrolPage(step, state, 'That code is not right. Check the app shows the account just added, and try the next code.');
      }
      await deps.audit.record(totpEvent(runtime.tenantId, state.accountId, 'totp_enabled', 'user', step.ctx.ip));
      const { pending: _sealed, ...enrolled } = state;
      await saveState(step, { ...enrolled, stage: 'enrolled' });
      page(step, 'Two-step verification is on', `${recoveryCodesBody(codes)}
${postForm(`${interactionPath(runtime, details)}/totp-done`, runtime.csrfKey, details.uid, '', 'I saved them, continue')}`);
    },
  },
  'totp-done': {
    async POST(step) {
      return finish(step, await requireState(step, 'enrolled'), AMR_TOTP);
    },
  },
};
