import Koa, { type Context } from 'koa';
import type { Logger } from 'pino';
import { MethodNotAllowedError, NotFoundError } from '../errors/errors.ts';
import type { AccountService } from '../accounts/accounts.ts';
import type { LoginCheck } from '../accounts/login-throttle.ts';
import type { UpstreamLinkStore } from '../accounts/upstream-links.ts';
import type { AuditSink } from '../observability/audit.ts';
import { serveMetrics, type CastellanMetrics } from '../observability/metrics.ts';
import { handleInteraction, type InteractionDeps } from '../interactions/interaction-routes.ts';
import type { MfaDeps } from '../interactions/mfa/mfa-deps.ts';
import { handleAccountSecurity } from '../interactions/mfa/account-security.ts';
import { handleUpstreamCallback } from '../interactions/upstream/upstream-callback.ts';
import type { PolicyHooks } from '../policy/hooks.ts';
import type { RegistrationAbuseStore } from '../registration/abuse/abuse-store.ts';
import { guardRegistration } from '../registration/registration-gate.ts';
import type { ModelStores } from '../storage/oidc-adapter.ts';
import type { TenantRegistry, TenantRuntime } from '../tenants/tenant-registry.ts';
import { registrationCors } from './cors.ts';
import { guardCodeEntry, guardDevicePolling } from '../grants/device/device-guards.ts';
import type { DeviceLimits } from '../grants/device/device-limits.ts';
import { answerRefreshRetry } from '../grants/refresh-retry/refresh-retry-guard.ts';
import type { RetryCache } from '../grants/refresh-retry/refresh-retry.ts';
import { requestLog } from './request-log.ts';
import { errorHandler, useTenantLookForErrors } from './error-handler.ts';
import { pageLook } from '../interactions/views.ts';
import { readFormForProvider } from './provider-body.ts';
import { bodyLimit } from './request-guards.ts';
import { securityHeaders } from './security-headers.ts';
import { handOverToProvider, pinForwardedHeaders, publicOriginOf } from './tenant-mount.ts';
import type { EndpointRateLimits } from './rate-limit.ts';

export interface AppDeps {
  baseUrl: string;
  trustProxy: boolean;
  tenants: TenantRegistry;
  checkLogin: LoginCheck;
  accounts: AccountService;
  mfa: MfaDeps;
  upstreamLinks: UpstreamLinkStore;
  policy: PolicyHooks;
  /** Abuse limits and books of self-registered clients. */
  registrationAbuse: RegistrationAbuseStore;
  modelStores: (tenant: string) => ModelStores;
  /** Device flow polling and user-code attempt limits. */
  deviceLimits: DeviceLimits;
  /** Answers kept for refresh-token retries within the grace. */
  retryCache: RetryCache;
  audit: AuditSink;
  log: Logger;
  /** Answers whether storage is reachable, for /readyz. */
  ready: () => Promise<boolean>;
  /** Request, token, error and store metrics; GET /metrics serves them with `metricsToken`. */
  metrics?: CastellanMetrics;
  metricsToken?: string | undefined;
  /** Request rate limits per address and per client on the token, registration, device and sign-in endpoints. */
  rateLimits: EndpointRateLimits;
  /** The admin API (src/admin/api), answering /admin/v1 and below; absent when it is off. */
  admin?: { handle(ctx: Context): Promise<void> } | undefined;
}

const DISCOVERY_PATH = '/.well-known/openid-configuration';
/** RFC 8414 §3.1 path insertion, and the OIDC form MCP clients also try (MCP 2025-11-25). */
const ROOT_WELL_KNOWN = /^\/\.well-known\/(?:oauth-authorization-server|openid-configuration)\/t\/([^/]+)\/?$/;
const TENANT_PATH = /^\/t\/([^/]+)(\/.*)?$/;
/** RFC 7592 client configuration endpoint, below the registration endpoint. */
const REGISTRATION_CLIENT_PATH = /^\/reg\/[^/]+$/;

function requireGet(ctx: Context): void {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD' && ctx.method !== 'OPTIONS') throw new MethodNotAllowedError(['GET']);
}

export function createApp(deps: AppDeps): Koa {
  // Behind a trusted proxy the client is the last X-Forwarded-For entry, the one the proxy
  // appended: earlier entries are whatever the client sent (and would dodge per-address limits).
  const app = new Koa({ proxy: deps.trustProxy, maxIpsCount: 1 });
  const origin = publicOriginOf(deps.baseUrl);
  const interactions: InteractionDeps = {
    checkLogin: deps.checkLogin, accounts: deps.accounts, modelStores: deps.modelStores, upstreamLinks: deps.upstreamLinks, mfa: deps.mfa, audit: deps.audit, log: deps.log,
  };
  // Koa would print every error itself; ours are logged once, by the error handler.
  app.silent = true;

  app.use(requestLog(deps.log, deps.metrics));
  app.use(securityHeaders({ https: origin.protocol === 'https' }));
  app.use(errorHandler(deps.log, deps.metrics));
  app.use(bodyLimit());

  // A tenant this node holds costs nothing to name; any other id is looked up under the
  // address's budget of unknown tenants (src/http/rate-limit.ts).
  const tenantOf = (ctx: Context, tenantId: string): Promise<TenantRuntime> =>
    deps.tenants.holds(tenantId) ? deps.tenants.get(tenantId) : deps.rateLimits.lookupTenant(ctx, () => deps.tenants.get(tenantId));

  app.use(async (ctx) => {
    const path = ctx.path;
    if (deps.admin && (path === '/admin/v1' || path.startsWith('/admin/v1/'))) return deps.admin.handle(ctx);
    const wellKnown = ROOT_WELL_KNOWN.exec(path);
    if (wellKnown) {
      requireGet(ctx);
      const runtime = await tenantOf(ctx, wellKnown[1] ?? '');
      deps.metrics?.watchProvider(runtime.provider);
      return handOverToProvider(ctx, runtime, DISCOVERY_PATH, origin, deps.trustProxy);
    }

    const tenantPath = TENANT_PATH.exec(path);
    if (tenantPath) {
      const runtime = await tenantOf(ctx, tenantPath[1] ?? '');
      deps.metrics?.watchProvider(runtime.provider);
      useTenantLookForErrors(ctx, pageLook(runtime.tenantId, runtime.settings));
      const rest = tenantPath[2] ?? '/';
      const admitting = deps.rateLimits.admit(ctx, runtime, rest);
      if (admitting) await admitting;
      if (rest.startsWith('/interaction/')) {
        pinForwardedHeaders(ctx.req, origin, deps.trustProxy);
        return handleInteraction(ctx, runtime, rest.slice('/interaction'.length), interactions);
      }
      if (rest === '/upstream/callback') {
        pinForwardedHeaders(ctx.req, origin, deps.trustProxy);
        return handleUpstreamCallback(ctx, runtime, interactions);
      }
      if (rest === '/account/security') return handleAccountSecurity(ctx, runtime, interactions);
      if (rest === '/.well-known/oauth-authorization-server' || rest === DISCOVERY_PATH) {
        requireGet(ctx);
        return handOverToProvider(ctx, runtime, DISCOVERY_PATH, origin, deps.trustProxy);
      }
      if (runtime.settings.registration.mode !== 'closed' && (rest === '/reg' || REGISTRATION_CLIENT_PATH.test(rest))) {
        if (registrationCors(ctx)) return;
        const gateDeps = { policy: deps.policy, abuse: deps.registrationAbuse, modelStores: deps.modelStores };
        return guardRegistration(ctx, runtime, rest, gateDeps, () => handOverToProvider(ctx, runtime, rest, origin, deps.trustProxy));
      }
      // GET only (oidc-provider's enableHttpPostMethods is off: its SameSite=Lax session cookie
      // does not come with a cross-site POST); a POST is told so, not "no such endpoint".
      if ((rest === '/auth' || rest === '/session/end') && ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new MethodNotAllowedError(['GET']);
      const { deviceFlow, ttl } = runtime.settings;
      if (ctx.method === 'POST' && rest === '/token' && (deviceFlow.enabled || ttl.refreshRetryGrace > 0)) {
        const form = await readFormForProvider(ctx);
        if (form) {
          await guardDevicePolling(form, runtime, deps.deviceLimits);
          if (await answerRefreshRetry(ctx, form, runtime, deps.retryCache)) return;
        }
      }
      if (deviceFlow.enabled && ctx.method === 'POST' && rest === '/device' && (await guardCodeEntry(ctx, runtime, deps.deviceLimits))) return;
      return deps.rateLimits.answer(ctx, runtime, rest, () => handOverToProvider(ctx, runtime, rest, origin, deps.trustProxy));
    }

    if (path === '/healthz') {
      requireGet(ctx);
      ctx.body = { status: 'ok' };
      return;
    }
    if (path === '/readyz') {
      requireGet(ctx);
      const ready = await deps.ready().catch(() => false);
      ctx.status = ready ? 200 : 503;
      ctx.body = { status: ready ? 'ready' : 'not ready' };
      ctx.set('Cache-Control', 'no-store');
      return;
    }
    if (path === '/metrics' && deps.metrics) {
      requireGet(ctx);
      return serveMetrics(ctx, deps.metrics, deps.metricsToken);
    }
    if (path === '/') {
      requireGet(ctx);
      ctx.body = {
        name: 'Castellan',
        description: 'OAuth 2.1 / OpenID Connect authorization server for MCP and AI agents',
        tenant_issuer_template: `${deps.baseUrl}/t/{tenant}`,
        metadata_template: `${deps.baseUrl}/.well-known/oauth-authorization-server/t/{tenant}`,
      };
      return;
    }
    throw new NotFoundError();
  });
  return app;
}
