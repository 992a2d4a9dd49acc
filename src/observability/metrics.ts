import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BearerTokenRequiredError, NotFoundError } from '../errors/errors.ts';
import type { ModelName, ModelStore } from '../storage/model-store.ts';
import type { ModelStores } from '../storage/oidc-adapter.ts';
import { within } from '../shared/within.ts';
import { tokenFieldsOf } from './token-response.ts';

/**
 * Prometheus metrics of one running server, on its own Registry (never prom-client's global
 * one: two servers in one process, as in the tests, must not share or clash).
 *
 * Every label has a small, fixed set of values, because each distinct value is a new time
 * series held in memory here and in Prometheus: paths become a route class, OAuth error
 * codes outside the known list become `other`, grant types likewise. No label ever carries a
 * path segment, a tenant id, a client id, a token or any other value a caller chooses.
 * Tenants are not a label: their number is not bounded by Castellan (the admin API creates
 * them); per-tenant figures are in the access log (`tenant` field).
 */
export interface CastellanMetrics {
  readonly registry: Registry;
  /** One finished (or aborted) HTTP request; `path` is reduced to its route class here. */
  observeRequest(method: string, path: string, status: number, seconds: number): void;
  /** An OAuth error answered by Castellan itself (src/http/error-handler.ts). */
  castellanError(path: string, oauthError: string): void;
  /** Counts tokens issued and OAuth errors from a tenant provider's events; once per provider. */
  watchProvider(provider: Provider): void;
  /** Reports the audit journal's entries not yet in the chain (how far the chain lags), read at each scrape. */
  watchAuditJournal(backlog: () => Promise<number>): void;
  /** The same stores, each operation timed. */
  instrumentModelStores(stores: ModelStores, backends: { durable: string; ephemeral: string }): ModelStores;
  /** The Prometheus text exposition. */
  render(): Promise<string>;
}

export const ROUTE_CLASSES = [
  'token', 'introspection', 'revocation', 'authorization', 'interaction', 'registration', 'device',
  'userinfo', 'jwks', 'logout', 'well-known', 'health', 'metrics', 'other',
] as const;
export type RouteClass = (typeof ROUTE_CLASSES)[number];

const TENANT_REST = /^\/t\/[^/]+(\/.*)?$/;

/** The bounded class of a request path (never the path itself). */
export function routeClassOf(path: string): RouteClass {
  if (path.startsWith('/.well-known/')) return 'well-known';
  if (path === '/healthz' || path === '/readyz') return 'health';
  if (path === '/metrics') return 'metrics';
  const tenant = TENANT_REST.exec(path);
  if (!tenant) return 'other';
  const rest = tenant[1] ?? '/';
  if (rest === '/token') return 'token';
  if (rest === '/token/introspection') return 'introspection';
  if (rest === '/token/revocation') return 'revocation';
  if (rest === '/auth' || rest.startsWith('/auth/')) return 'authorization';
  if (rest.startsWith('/interaction/') || rest === '/upstream/callback' || rest === '/account/security') return 'interaction';
  if (rest === '/reg' || rest.startsWith('/reg/')) return 'registration';
  if (rest === '/device' || rest.startsWith('/device/')) return 'device';
  if (rest === '/me') return 'userinfo';
  if (rest === '/jwks') return 'jwks';
  if (rest === '/session/end' || rest.startsWith('/session/end/')) return 'logout';
  if (rest.startsWith('/.well-known/')) return 'well-known';
  return 'other';
}

/** OAuth / OIDC / RFC 7591 / RFC 8628 / RFC 8693 error codes; anything else is `other`. */
const KNOWN_OAUTH_ERRORS = new Set([
  'invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope',
  'access_denied', 'unsupported_response_type', 'server_error', 'temporarily_unavailable', 'invalid_token', 'insufficient_scope',
  'invalid_target', 'invalid_redirect_uri', 'invalid_client_metadata', 'invalid_software_statement', 'unapproved_software_statement',
  'authorization_pending', 'slow_down', 'expired_token', 'too_many_requests', 'interaction_required', 'login_required',
  'account_selection_required', 'consent_required', 'invalid_request_uri', 'invalid_request_object', 'request_not_supported',
  'request_uri_not_supported', 'registration_not_supported', 'invalid_dpop_proof', 'use_dpop_nonce', 'invalid_authorization_details',
  'unmet_authentication_requirements', 'unsupported_token_type',
]);

export function oauthErrorLabel(code: unknown): string {
  return typeof code === 'string' && KNOWN_OAUTH_ERRORS.has(code) ? code : 'other';
}

const GRANT_TYPES: Record<string, string> = {
  authorization_code: 'authorization_code',
  client_credentials: 'client_credentials',
  refresh_token: 'refresh_token',
  'urn:ietf:params:oauth:grant-type:device_code': 'device_code',
  'urn:ietf:params:oauth:grant-type:token-exchange': 'token_exchange',
  'urn:ietf:params:oauth:grant-type:jwt-bearer': 'jwt_bearer',
};

function grantTypeLabel(grantType: unknown): string {
  return (typeof grantType === 'string' && GRANT_TYPES[grantType]) || 'other';
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** oidc-provider's error events, by the route class they belong to. */
const PROVIDER_ERROR_EVENTS: Record<string, RouteClass> = {
  'authorization.error': 'authorization',
  'grant.error': 'token',
  'introspection.error': 'introspection',
  'revocation.error': 'revocation',
  'userinfo.error': 'userinfo',
  'registration_create.error': 'registration',
  'registration_read.error': 'registration',
  'registration_update.error': 'registration',
  'registration_delete.error': 'registration',
  'device_authorization.error': 'device',
  'code_verification.error': 'device',
  'device_resume.error': 'device',
  'end_session.error': 'logout',
  'end_session_confirm.error': 'logout',
  'end_session_success.error': 'logout',
  'discovery.error': 'well-known',
  'jwks.error': 'jwks',
  'pushed_authorization_request.error': 'other',
  'backchannel.error': 'other',
};

const MODEL_LABELS = new Set<string>([
  'Session', 'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'ClientCredentials', 'Client', 'InitialAccessToken',
  'RegistrationAccessToken', 'Interaction', 'ReplayDetection', 'PushedAuthorizationRequest', 'Grant', 'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
] satisfies ModelName[]);

/** The audit journal's backlog, and how long a scrape waits for it. */
const JOURNAL_GAUGE = 'castellan_audit_journal_entries';
const BACKLOG_WAIT_MS = 1_000;

export function createMetrics(options: { defaultMetrics?: boolean } = {}): CastellanMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'castellan_http_requests_total',
    help: 'HTTP requests answered, by method, route class and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'castellan_http_request_duration_seconds',
    help: 'Time from request to the last byte of the response, by route class',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'castellan_tokens_issued_total',
    help: 'Tokens issued at the token endpoint, by grant type and token type (access_token, refresh_token, id_token)',
    labelNames: ['grant_type', 'token_type'] as const,
    registers: [registry],
  });
  const oauthErrors = new Counter({
    name: 'castellan_oauth_errors_total',
    help: 'OAuth errors answered, by route class, OAuth error code (unknown codes: other) and who answered (provider, castellan)',
    labelNames: ['route', 'error', 'source'] as const,
    registers: [registry],
  });
  const storeLatency = new Histogram({
    name: 'castellan_store_operation_duration_seconds',
    help: 'Model store operations, by store (durable, ephemeral), backend, operation and oidc-provider model',
    labelNames: ['store', 'backend', 'operation', 'model'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const storeErrors = new Counter({
    name: 'castellan_store_operation_errors_total',
    help: 'Model store operations that failed, by store, backend and operation',
    labelNames: ['store', 'backend', 'operation'] as const,
    registers: [registry],
  });

  const watched = new WeakSet<Provider>();

  interface StoreLabels { store: string; backend: string; operation: string; model: string }

  /** Observes one store operation started at `started` (performance.now()) when it settles. */
  function timed<T>(labels: StoreLabels, started: number, operation: Promise<T>): Promise<T> {
    return operation.then(
      (value) => {
        storeLatency.observe(labels, (performance.now() - started) / 1000);
        return value;
      },
      (err: unknown) => {
        storeLatency.observe(labels, (performance.now() - started) / 1000);
        storeErrors.inc({ store: labels.store, backend: labels.backend, operation: labels.operation });
        throw err;
      },
    );
  }

  function instrument(store: ModelStore, which: 'durable' | 'ephemeral', backend: string): ModelStore {
    // One label object per operation and model, made once (every request does several store operations).
    const known = new Map<string, StoreLabels>();
    const l = (operation: string, model?: string): StoreLabels => {
      const modelLabel = model !== undefined && MODEL_LABELS.has(model) ? model : 'any';
      const key = `${operation}:${modelLabel}`;
      let labels = known.get(key);
      if (labels === undefined) {
        labels = { store: which, backend, operation, model: modelLabel };
        known.set(key, labels);
      }
      return labels;
    };
    // Arguments are evaluated in order: the clock is read before the store operation starts.
    const now = () => performance.now();
    return {
      upsert: (model, id, payload, expiresIn) => timed(l('upsert', model), now(), store.upsert(model, id, payload, expiresIn)),
      find: (model, id) => timed(l('find', model), now(), store.find(model, id)),
      findByUid: (model, uid) => timed(l('findByUid', model), now(), store.findByUid(model, uid)),
      findByUserCode: (model, userCode) => timed(l('findByUserCode', model), now(), store.findByUserCode(model, userCode)),
      consume: (model, id) => timed(l('consume', model), now(), store.consume(model, id)),
      destroy: (model, id) => timed(l('destroy', model), now(), store.destroy(model, id)),
      revokeByGrantId: (grantId) => timed(l('revokeByGrantId'), now(), store.revokeByGrantId(grantId)),
      revokeByClientId: (clientId, models) => timed(l('revokeByClientId'), now(), store.revokeByClientId(clientId, models)),
    };
  }

  return {
    registry,
    observeRequest(method, path, status, seconds) {
      const route = routeClassOf(path);
      const m = METHODS.has(method) ? method : 'other';
      requests.inc({ method: m, route, status: String(status >= 100 && status < 600 ? Math.trunc(status) : 0) });
      latency.observe({ method: m, route }, seconds);
    },
    castellanError(path, oauthError) {
      oauthErrors.inc({ route: routeClassOf(path), error: oauthErrorLabel(oauthError), source: 'castellan' });
    },
    watchAuditJournal(backlog) {
      if (registry.getSingleMetric(JOURNAL_GAUGE)) return;
      new Gauge({
        name: JOURNAL_GAUGE,
        help: 'Audit events in the journal (Redis) not yet moved into the hash chain; NaN when Redis does not answer within a second',
        registers: [registry],
        async collect() {
          // A scrape must neither fail nor wait out a store timeout because Redis is down or slow.
          this.set(await within(backlog(), BACKLOG_WAIT_MS, Number.NaN));
        },
      });
    },
    watchProvider(provider) {
      if (watched.has(provider)) return;
      watched.add(provider);
      provider.on('grant.success', (ctx: { oidc?: { params?: Record<string, unknown> }; body?: unknown }) => {
        const grantType = grantTypeLabel(ctx.oidc?.params?.grant_type);
        for (const tokenType of tokenFieldsOf(ctx.body)) tokens.inc({ grant_type: grantType, token_type: tokenType });
      });
      for (const [event, route] of Object.entries(PROVIDER_ERROR_EVENTS)) {
        // Every name here is one of oidc-provider's "<endpoint>.error" events (ctx, error).
        provider.on(event as 'grant.error', (_ctx: unknown, err: unknown) => {
          const code = typeof err === 'object' && err !== null ? (err as { error?: unknown }).error : undefined;
          oauthErrors.inc({ route, error: oauthErrorLabel(code), source: 'provider' });
        });
      }
      provider.on('server_error', () => {
        oauthErrors.inc({ route: 'other', error: 'server_error', source: 'provider' });
      });
    },
    instrumentModelStores(stores, backends) {
      const durable = instrument(stores.durable, 'durable', backends.durable);
      // One store for both (memory, MongoDB only): time it once, as durable.
      const ephemeral = stores.ephemeral === stores.durable ? durable : instrument(stores.ephemeral, 'ephemeral', backends.ephemeral);
      return { ...stores, durable, ephemeral };
    },
    render: () => registry.metrics(),
  };
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * GET /metrics. Off (404) unless a token is configured; then only with
 * `Authorization: Bearer <token>` (compared in constant time), else 401.
 */
export async function serveMetrics(ctx: Context, metrics: CastellanMetrics, token: string | undefined): Promise<void> {
  if (!token) throw new NotFoundError();
  const given = /^Bearer ([^\s]+)$/i.exec(ctx.get('authorization'))?.[1] ?? '';
  if (!timingSafeEqual(sha256(given), sha256(token))) throw new BearerTokenRequiredError('the metrics endpoint needs its bearer token');
  ctx.set('Cache-Control', 'no-store');
  ctx.type = metrics.registry.contentType;
  ctx.body = await metrics.render();
}
