import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { AccountService } from '../accounts/accounts.ts';
import type { LoginCheck } from '../accounts/login-throttle.ts';
import type { UpstreamLinkStore } from '../accounts/upstream-links.ts';
import type { AuditSink } from '../observability/audit.ts';
import type { ModelStores } from '../storage/oidc-adapter.ts';
import type { MfaDeps } from './mfa/mfa-deps.ts';
import type { TenantRuntime } from '../tenants/tenant-registry.ts';

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;
export type InteractionResult = Parameters<Provider['interactionResult']>[2];

/** What the interaction pages need from the rest of Castellan. */
export interface InteractionDeps {
  checkLogin: LoginCheck;
  accounts: AccountService;
  /** A tenant's model stores: `ephemeral` (Redis in production) holds short-lived step state. */
  modelStores: (tenant: string) => ModelStores;
  /** TOTP and the sign-in throttle, for the second-factor steps. */
  mfa: MfaDeps;
  /** Upstream identities linked to local users ("Sign in with <IdP>"). */
  upstreamLinks: UpstreamLinkStore;
  /** Sign-in failures, locks and second-factor changes (successes: provider-factory.ts). */
  audit: AuditSink;
  /** For what only the operator should see (why an upstream IdP failed). */
  log: Logger;
}

/** One request to one step of an interaction, after the dispatcher's checks. */
export interface StepRequest {
  ctx: Context;
  runtime: TenantRuntime;
  details: InteractionDetails;
  deps: InteractionDeps;
  /** The posted form (CSRF already checked); empty on GET. */
  form: URLSearchParams;
}

export type StepHandler = (step: StepRequest) => Promise<void>;

/** A step's handlers by method: `/t/<tenant>/interaction/<uid>/<step>`. */
export interface Step {
  GET?: StepHandler;
  POST?: StepHandler;
}

/** The base path of an interaction's pages and forms (already safe for HTML attributes). */
export function interactionPath(runtime: TenantRuntime, details: InteractionDetails): string {
  return `/t/${runtime.tenantId}/interaction/${details.uid}`;
}

/** Ends the interaction: oidc-provider resumes the authorization request with this result. */
export async function finishInteraction(ctx: Context, provider: Provider, result: InteractionResult): Promise<void> {
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
}
