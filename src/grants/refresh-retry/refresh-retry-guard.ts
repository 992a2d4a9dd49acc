import type { Context } from 'koa';
import type { TenantRuntime } from '../../tenants/tenant-registry.ts';
import { openAnswer, retryKey, type RetryCache } from './refresh-retry.ts';

/** The client a token request names: client_id in the form, or the Basic credentials' user. */
function clientIdOf(ctx: Context, form: URLSearchParams): string | undefined {
  const fromForm = form.get('client_id');
  if (fromForm) return fromForm;
  const header = ctx.get('authorization');
  if (!header.toLowerCase().startsWith('basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, colon));
  } catch {
    return undefined;
  }
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
  if (!answer || clientIdOf(ctx, form) !== answer.clientId) return false;
  ctx.status = 200;
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  ctx.body = answer.body;
  return true;
}
