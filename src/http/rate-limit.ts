import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import { TenantNotFoundError, TooManyRequestsError } from '../errors/errors.ts';
import { registrationSource } from '../registration/abuse/registration-limits.ts';
import type { RateLimit, RateVerdict } from '../storage/rate-limits.ts';
import type { TenantRuntime } from '../tenants/tenant-registry.ts';
import { decodeBasicCredentials } from './basic-credentials.ts';
import { readFormForProvider } from './provider-body.ts';
import type { RateLimitedEndpoint, RateLimitSettings } from './rate-limit-settings.ts';
import type { EndpointLimitCounters } from './rate-limit-store.ts';

/**
 * Request rate limits on a tenant's token, introspection, revocation, device authorization,
 * registration and sign-in endpoints, checked before the tenant's provider does any work.
 *
 * Who pays for a request:
 * - every request pays one point from its address's bucket (an IPv4 address or an IPv6 /64,
 *   as for registrations), counted before anything else;
 * - a request made with a client credential (client_secret_basic, client_secret_post,
 *   private_key_jwt) that the provider answered with a 2xx was authenticated as that client:
 *   it pays from the client's bucket instead, and its address gets its point back. So a
 *   resource server introspecting with its credential is bounded by its own, larger bucket,
 *   not by the address it shares with others.
 * Nobody can drain a client's bucket by naming its client_id: the bucket is only read before
 * the provider answers (a client over its limit is refused at once), and only written after
 * the provider has authenticated the client. Public clients ("none") have no per-client
 * bucket: their client_id is not a secret and is shared by every installation of the app,
 * so a bucket per client_id would let one user's traffic refuse everyone else's.
 *
 * Over a limit: 429 too_many_requests with Retry-After (the code registrations already use;
 * slow_down stays the device-polling answer of RFC 8628 §3.5).
 */
export interface EndpointRateLimits {
  /**
   * Counts the request against its address; rejects with TooManyRequestsError over the
   * limit. Undefined (nothing to await) when the request is not counted at all.
   */
  admit(ctx: Context, runtime: TenantRuntime, rest: string): Promise<void> | undefined;
  /** Hands the request to the provider under its client's limit, and charges the client on success. */
  answer(ctx: Context, runtime: TenantRuntime, rest: string, handOver: () => Promise<void>): Promise<void>;
  /**
   * Loads a tenant this node does not hold, under its address's budget of unknown tenants:
   * each unknown id costs a tenant store read, so an address that named too many lately is
   * refused (429) before the store is asked again.
   */
  lookupTenant(ctx: Context, load: () => Promise<TenantRuntime>): Promise<TenantRuntime>;
}

/** Requests naming a tenant that does not exist, per address (IPv4, or IPv6 /64), process-wide. */
export const UNKNOWN_TENANT_LIMIT: RateLimit = { points: 60, durationSeconds: 60 };

const INTERACTION_LOGIN = /^\/interaction\/[^/]+\/login$/;
const REGISTRATION = /^\/reg(?:\/[^/]+)?$/;

/** Which limited endpoint a tenant request is for (its path below /t/<tenant>), if any. */
export function rateLimitedEndpointOf(method: string, rest: string): RateLimitedEndpoint | undefined {
  if (REGISTRATION.test(rest)) return method === 'OPTIONS' ? undefined : 'registration';
  if (method !== 'POST') return undefined;
  switch (rest) {
    case '/token': return 'token';
    case '/token/introspection': return 'introspection';
    case '/token/revocation': return 'revocation';
    case '/device/auth': return 'deviceAuthorization';
    case '/account/security': return 'login';
    default: return INTERACTION_LOGIN.test(rest) ? 'login' : undefined;
  }
}

const DESCRIPTIONS: Record<RateLimitedEndpoint, string> = {
  token: 'token requests',
  introspection: 'introspection requests',
  revocation: 'revocation requests',
  deviceAuthorization: 'device authorization requests',
  registration: 'registration requests',
  login: 'sign-in attempts',
};

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const MAX_CLIENT_ID = 2048;

/** The `sub` of a client assertion, read without verifying it: the provider verifies it. */
function assertionSubject(assertion: string): string | undefined {
  const payload = assertion.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const sub = typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>).sub : undefined;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The client a request claims to be with a credential, or undefined for public clients and
 * requests without one. Only a claim: the provider decides whether the credential is right.
 */
export function credentialedClientOf(authorization: string, form: URLSearchParams | undefined): string | undefined {
  const claimed = authorization
    ? decodeBasicCredentials(authorization)?.clientId
    : form?.get('client_secret')
      ? form.get('client_id') ?? undefined
      : form?.get('client_assertion_type') === CLIENT_ASSERTION_TYPE && form.get('client_assertion')
        ? form.get('client_id') ?? assertionSubject(form.get('client_assertion') ?? '')
        : undefined;
  return claimed && claimed.length <= MAX_CLIENT_ID ? claimed : undefined;
}

/**
 * The request's form, whether Castellan already read it for the provider or not. Read here,
 * it is handed on with repeated parameters kept (RFC 8707 allows several `resource`).
 */
async function formOf(ctx: Context): Promise<URLSearchParams | undefined> {
  const given = (ctx.req as IncomingMessage & { body?: unknown }).body;
  if (given && typeof given === 'object') {
    const form = new URLSearchParams();
    for (const [key, value] of Object.entries(given)) {
      for (const item of Array.isArray(value) ? value : [value]) form.append(key, String(item));
    }
    return form;
  }
  return ctx.req.readable ? readFormForProvider(ctx) : undefined;
}

const CHARGED_ADDRESS = Symbol('castellan.rateLimit.address');

function refused(verdict: RateVerdict, what: string): void {
  if (!verdict.allowed) throw new TooManyRequestsError(what, verdict.retryAfterSeconds);
}

export interface EndpointRateLimitDeps {
  counters: EndpointLimitCounters;
  /** The process-wide switch (CASTELLAN_RATE_LIMITS); tenants switch theirs in rateLimits.enabled. */
  enabled: boolean;
  log: Logger;
}

export function createEndpointRateLimits(deps: EndpointRateLimitDeps): EndpointRateLimits {
  if (!deps.enabled) {
    return { admit: () => undefined, answer: (_ctx, _runtime, _rest, handOver) => handOver(), lookupTenant: (_ctx, load) => load() };
  }
  const { counters, log } = deps;
  let lastWarned = 0;
  // The counters fall back to memory when Redis fails; anything else still must not turn a
  // request into a 500: such a request is let through, and the log says so (once per 10 s).
  const failOpen = (err: unknown): RateVerdict => {
    if (Date.now() - lastWarned > 10_000) {
      lastWarned = Date.now();
      log.warn({ err }, 'rate limit counters failed; requests are let through');
    }
    return { allowed: true };
  };
  const limitsOf = (settings: RateLimitSettings, endpoint: RateLimitedEndpoint) => {
    const limits = settings[endpoint];
    return {
      perIp: { points: limits.perIp, durationSeconds: limits.windowSeconds } satisfies RateLimit,
      perClient: 'perClient' in limits ? { points: limits.perClient, durationSeconds: limits.windowSeconds } satisfies RateLimit : undefined,
    };
  };
  const addressKey = (tenant: string, endpoint: RateLimitedEndpoint, ip: string) => `${tenant}:${endpoint}:ip:${registrationSource(ip)}`;
  const clientKey = (tenant: string, endpoint: RateLimitedEndpoint, clientId: string) => `${tenant}:${endpoint}:client:${clientId}`;

  const chargeAddress = async (ctx: Context, tenant: string, endpoint: RateLimitedEndpoint, perIp: RateLimit): Promise<void> => {
    const key = addressKey(tenant, endpoint, ctx.ip);
    const verdict = await counters.consume(key, perIp).catch(failOpen);
    (ctx.state as Record<symbol, unknown>)[CHARGED_ADDRESS] = key;
    refused(verdict, `too many ${DESCRIPTIONS[endpoint]} from this address; at most ${perIp.points} per ${perIp.durationSeconds} seconds`);
  };

  return {
    // Not async itself: most requests (GETs, endpoints without limits) are not counted, and
    // then cost no promise and no await.
    admit(ctx, runtime, rest) {
      const settings = runtime.settings.rateLimits;
      const endpoint = settings.enabled ? rateLimitedEndpointOf(ctx.method, rest) : undefined;
      if (!endpoint) return undefined;
      const { perIp } = limitsOf(settings, endpoint);
      if (perIp.points === 0) return undefined;
      return chargeAddress(ctx, runtime.tenantId, endpoint, perIp);
    },

    async lookupTenant(ctx, load) {
      const key = `unknown-tenant:ip:${registrationSource(ctx.ip)}`;
      const { points, durationSeconds } = UNKNOWN_TENANT_LIMIT;
      refused(await counters.peek(key, UNKNOWN_TENANT_LIMIT).catch(failOpen), `too many requests for unknown tenants from this address; at most ${points} per ${durationSeconds} seconds`);
      try {
        return await load();
      } catch (err) {
        if (err instanceof TenantNotFoundError) await counters.consume(key, UNKNOWN_TENANT_LIMIT).catch(failOpen);
        throw err;
      }
    },

    async answer(ctx, runtime, rest, handOver) {
      const settings = runtime.settings.rateLimits;
      const endpoint = settings.enabled ? rateLimitedEndpointOf(ctx.method, rest) : undefined;
      const limits = endpoint && limitsOf(settings, endpoint);
      if (!endpoint || !limits?.perClient || limits.perClient.points === 0) return handOver();
      const authorization = ctx.get('authorization');
      const clientId = credentialedClientOf(authorization, authorization ? undefined : await formOf(ctx));
      if (clientId === undefined) return handOver();
      const key = clientKey(runtime.tenantId, endpoint, clientId);
      const perClient = limits.perClient;
      refused(
        await counters.peek(key, perClient).catch(failOpen),
        `too many ${DESCRIPTIONS[endpoint]} from this client; at most ${perClient.points} per ${perClient.durationSeconds} seconds`,
      );
      await handOver();
      const status = ctx.res.statusCode;
      if (status < 200 || status > 299) return;
      // The provider authenticated the client: the client pays, its address is paid back.
      const charged = (ctx.state as Record<symbol, unknown>)[CHARGED_ADDRESS];
      await Promise.all([
        counters.consume(key, perClient),
        typeof charged === 'string' ? counters.refund(charged, limits.perIp) : undefined,
      ]).catch(failOpen);
    },
  };
}
