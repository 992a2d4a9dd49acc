import type { Context } from 'koa';
import type { TenantRuntime } from '../../tenants/tenant-registry.ts';
import { openAnswer, retryKey, type RetryCache } from './refresh-retry.ts';

/** What oidc-provider takes for a client credential or attestation (lib/shared/client_auth.js). */
const CREDENTIAL_HEADERS = ['authorization', 'oauth-client-attestation', 'oauth-client-attestation-pop'];
const CREDENTIAL_PARAMS = ['client_secret', 'client_assertion'];

/**
 * The public client a token request authenticates as, decided as oidc-provider decides it.
 * Answers are only kept for clients whose token_endpoint_auth_method is "none"
 * (provider-factory.ts), and the provider authenticates such a client only when the request
 * carries no credential at all: any Authorization header, even a well-formed Basic one
 * naming the same client (client_auth.js then allows only client_secret_basic/_post), and
 * any client_secret or client_assertion makes it refuse the request. So such a request names
 * no public client here either, and a client_id given twice names none (the provider
 * refuses duplicates).
 */
function publicClientOf(ctx: Context, form: URLSearchParams): string | undefined {
  if (CREDENTIAL_HEADERS.some((name) => ctx.headers[name] !== undefined)) return undefined;
  // oidc-provider reads an empty parameter as absent (lib/helpers/params.js).
  if (CREDENTIAL_PARAMS.some((name) => form.get(name))) return undefined;
  const ids = form.getAll('client_id');
  return ids.length === 1 && ids[0] ? ids[0] : undefined;
}

/**
 * Answers a refresh request whose token was rotated moments ago by the same client with the
 * pair it was given then (see refresh-retry.ts). Returns true when it answered.
 */
export async function answerRefreshRetry(ctx: Context, form: URLSearchParams, runtime: TenantRuntime, cache: RetryCache): Promise<boolean> {
  const refreshToken = form.get('refresh_token');
  if (form.get('grant_type') !== 'refresh_token' || !refreshToken || runtime.settings.ttl.refreshRetryGrace === 0) return false;
  const sealed = await cache.get(retryKey(runtime.tenantId, refreshToken));
  if (!sealed) return false;
  const answer = openAnswer(refreshToken, sealed);
  if (!answer || publicClientOf(ctx, form) !== answer.clientId) return false;
  ctx.status = 200;
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  ctx.body = answer.body;
  return true;
}
