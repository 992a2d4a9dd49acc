import type { Context } from 'koa';
import { InvalidRequestError, MethodNotAllowedError } from '../errors/errors.ts';
import { readFormBody } from '../http/request-body.ts';
import type { TenantRuntime } from '../tenants/tenant-registry.ts';
import { renderConsentPage, consentStep } from './consent-step.ts';
import { checkCsrfToken } from './csrf.ts';
import { finishInteraction, type InteractionDeps, type Step, type StepRequest } from './interaction-step.ts';
import { loginStep, renderLoginPage } from './login-step.ts';
import { secondFactorSteps } from './mfa/second-factor.ts';
import { upstreamSteps } from './upstream/upstream-choices.ts';

export type { InteractionDeps } from './interaction-step.ts';

const abortStep: Step = {
  POST: ({ ctx, runtime }) =>
    finishInteraction(ctx, runtime.provider, { error: 'access_denied', error_description: 'the user denied the request' }),
};

/** The interaction's first page: whatever oidc-provider's prompt asks for. */
const entryStep: Step = {
  GET: (step) => (step.details.prompt.name === 'login' ? Promise.resolve(renderLoginPage(step)) : renderConsentPage(step)),
};

const STEPS: Readonly<Record<string, Step>> = {
  ...secondFactorSteps,
  ...upstreamSteps,
  '': entryStep,
  login: loginStep,
  confirm: consentStep,
  abort: abortStep,
};

/**
 * `/t/<tenant>/interaction/<uid>[/<step>]`: resolves the interaction, checks the method and,
 * for every POST, the CSRF token; the step modules do the rest.
 */
export async function handleInteraction(ctx: Context, runtime: TenantRuntime, rest: string, deps: InteractionDeps): Promise<void> {
  const match = /^\/([A-Za-z0-9_-]{1,64})(?:\/([a-z][a-z-]{0,31}))?$/.exec(rest);
  if (!match) throw new InvalidRequestError('unknown interaction route');
  const [, uid, name = ''] = match;
  const step = Object.hasOwn(STEPS, name) ? STEPS[name] : undefined;
  if (!step) throw new InvalidRequestError('unknown interaction step');
  const handler = ctx.method === 'GET' || ctx.method === 'POST' ? step[ctx.method] : undefined;
  if (!handler) throw new MethodNotAllowedError(Object.keys(step));

  const details = await runtime.provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) throw new InvalidRequestError('interaction mismatch');
  let form = new URLSearchParams();
  if (ctx.method === 'POST') {
    form = await readFormBody(ctx);
    checkCsrfToken(runtime.csrfKey, details.uid, form.get('csrf'));
  }
  const request: StepRequest = { ctx, runtime, details, deps, form };
  return handler(request);
}
