import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

/** Counters (rate limits) live in Redis in production and in memory otherwise (STORES.md). */
export type RateVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** rate-limiter-flexible rejects with a RateLimiterRes over the limit, with an Error when its store fails. */
export async function rateVerdictOf(consumption: Promise<unknown>): Promise<RateVerdict> {
  try {
    await consumption;
    return { allowed: true };
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) return { allowed: false, retryAfterSeconds: Math.ceil(rejection.msBeforeNext / 1000) };
    throw rejection;
  }
}

export interface RateLimit {
  points: number;
  durationSeconds: number;
}

/**
 * One limiter per distinct limit, made on first use: tenants may set limits of their own,
 * and a rate-limiter-flexible limiter has its points and window fixed at construction.
 */
export function limiterPerLimit<T extends RateLimiterAbstract>(make: (limit: RateLimit) => T): (limit: RateLimit) => T {
  const limiters = new Map<string, T>();
  return (limit) => {
    const key = `${limit.points}/${limit.durationSeconds}`;
    let limiter = limiters.get(key);
    if (!limiter) {
      limiter = make(limit);
      limiters.set(key, limiter);
    }
    return limiter;
  };
}
