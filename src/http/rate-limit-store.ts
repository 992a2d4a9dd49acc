import type { Cluster, Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { limiterPerLimit, rateVerdictOf, type RateLimit, type RateVerdict } from '../storage/rate-limits.ts';

/**
 * The counters behind the endpoint rate limits (src/http/rate-limit.ts): in Redis, shared by
 * every node, where there is Redis; in this process otherwise.
 */
export interface EndpointLimitCounters {
  /** Counts one request; refused once the key has used its points in the window. */
  consume(key: string, limit: RateLimit): Promise<RateVerdict>;
  /** Whether the key still has a point left, without counting anything. */
  peek(key: string, limit: RateLimit): Promise<RateVerdict>;
  /** Gives back a point counted by consume (the request was paid for by someone else). */
  refund(key: string, limit: RateLimit): Promise<void>;
}

function countersOn(limiterFor: (limit: RateLimit) => RateLimiterAbstract): EndpointLimitCounters {
  return {
    consume: (key, limit) => rateVerdictOf(limiterFor(limit).consume(key)),
    async peek(key, limit) {
      const state = await limiterFor(limit).get(key);
      if (!state || state.consumedPoints < limit.points) return { allowed: true };
      return { allowed: false, retryAfterSeconds: Math.ceil(state.msBeforeNext / 1000) };
    },
    async refund(key, limit) {
      await limiterFor(limit).reward(key, 1);
    },
  };
}

const memoryLimiter = (limit: RateLimit) => new RateLimiterMemory({ points: limit.points, duration: limit.durationSeconds });

export function createMemoryEndpointLimitCounters(): EndpointLimitCounters {
  return countersOn(limiterPerLimit(memoryLimiter));
}

/**
 * Redis counters with a per-process insurance: while Redis is unreachable (or answers with an
 * error), each node counts on its own in memory instead. A rate limit protects the service, it
 * does not decide what is issued, so it must not turn a Redis outage into refusals of
 * requests that need no Redis (client credentials, introspection of opaque tokens: the
 * store-outage tests); per-node counting keeps the limits at most nodes × the configured value
 * meanwhile. `rejectIfRedisNotReady` switches to the insurance at once instead of waiting for
 * ioredis's retries on every request.
 */
export function createRedisEndpointLimitCounters(redis: Redis | Cluster, prefix: string): EndpointLimitCounters {
  return countersOn(limiterPerLimit((limit) => new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${prefix}:rate:${limit.points}:${limit.durationSeconds}`,
    points: limit.points,
    duration: limit.durationSeconds,
    rejectIfRedisNotReady: true,
    insuranceLimiter: memoryLimiter(limit),
  })));
}
