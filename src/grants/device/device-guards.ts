import type { Context } from 'koa';
import { SlowDownError } from '../../errors/errors.ts';
import { readFormForProvider } from '../../http/provider-body.ts';
import { renderDeviceCodeLimited } from '../../interactions/device-pages.ts';
import { pageLook } from '../../interactions/views.ts';
import type { TenantRuntime } from '../../tenants/tenant-registry.ts';
import type { DeviceLimits } from './device-limits.ts';

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/**
 * RFC 8628 §3.5 at the token endpoint: a device polling faster than its interval gets
 * slow_down and 5 more seconds of interval; oidc-provider has no such check.
 */
export async function guardDevicePolling(form: URLSearchParams, runtime: TenantRuntime, limits: DeviceLimits): Promise<void> {
  if (!runtime.settings.deviceFlow.enabled) return;
  const deviceCode = form.get('device_code');
  if (form.get('grant_type') !== DEVICE_CODE_GRANT || !deviceCode) return;
  const verdict = await limits.poll(runtime.tenantId, deviceCode, runtime.settings.deviceFlow.interval);
  if (!verdict.ok) throw new SlowDownError(verdict.intervalSeconds);
}

/**
 * Guessing user codes: every code submitted at the verification page counts against the
 * address and the browser session; past the tenant's limit the page says so (429) and
 * oidc-provider is not asked.
 */
export async function guardCodeEntry(ctx: Context, runtime: TenantRuntime, limits: DeviceLimits): Promise<boolean> {
  const { settings, tenantId } = runtime;
  const form = await readFormForProvider(ctx);
  if (!form) return false;
  // Only a typed code is a guess; the Yes/No answer on the confirmation page is not.
  if (form.has('confirm') || form.has('abort')) return false;
  const limit = { attempts: settings.deviceFlow.attempts, windowSeconds: settings.deviceFlow.attemptWindowSeconds };
  const session = ctx.cookies.get('_session');
  const verdicts = await Promise.all([
    limits.attempt(tenantId, `ip:${ctx.ip}`, limit),
    ...(session ? [limits.attempt(tenantId, `session:${session}`, limit)] : []),
  ]);
  const refused = verdicts.find((v) => !v.allowed);
  if (!refused || refused.allowed) return false;
  renderDeviceCodeLimited(ctx, pageLook(tenantId, settings), refused.retryAfterSeconds);
  return true;
}
