import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';

export type LoginOutcome =
  | { ok: true; user: { id: string } }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'locked'; retryAfterSeconds: number };

/** Checks a login's password; the caller knows nothing more than these three outcomes. */
export type LoginCheck = (tenant: string, login: string, password: string, ip: string) => Promise<LoginOutcome>;

export interface LoginThrottleLimits {
  /** Failed sign-ins per login name (whether or not the account exists) per window. */
  perAccount: number;
  /** Failed sign-ins per client address per window. */
  perAddress: number;
  windowSeconds: number;
  /** Added wait per failure already counted, up to maxDelayMs: guessing slows down first. */
  delayPerFailureMs: number;
  maxDelayMs: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginThrottleLimits = {
  perAccount: 5,
  perAddress: 30,
  windowSeconds: 15 * 60,
  delayPerFailureMs: 250,
  maxDelayMs: 2000,
};

export interface LoginLimiters {
  account: RateLimiterAbstract;
  address: RateLimiterAbstract;
}

function limitersOn(make: (name: string, points: number) => RateLimiterAbstract, limits: LoginThrottleLimits): LoginLimiters {
  return { account: make('account', limits.perAccount), address: make('address', limits.perAddress) };
}

export function redisLoginLimiters(redis: Redis | Cluster, prefix: string, limits = DEFAULT_LOGIN_LIMITS): LoginLimiters {
  return limitersOn((name, points) => new RateLimiterRedis({
    storeClient: redis, keyPrefix: `${prefix}:login-${name}`, points, duration: limits.windowSeconds,
  }), limits);
}

export function memoryLoginLimiters(limits = DEFAULT_LOGIN_LIMITS): LoginLimiters {
  return limitersOn((_name, points) => new RateLimiterMemory({ points, duration: limits.windowSeconds }), limits);
}

/** One throttled check of a login name: its password, or a second factor after it. */
export type ThrottledOutcome<T> =
  | { ok: true; value: T }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'locked'; retryAfterSeconds: number };

/**
 * Brute-force limits shared by every check of one login name, so a password and the TOTP
 * code after it count against the same per-account lock.
 */
export interface LoginThrottle {
  attempt<T>(tenant: string, login: string, ip: string, check: () => Promise<T | undefined>): Promise<ThrottledOutcome<T>>;
  /** The whole sign-in succeeded: the name's failures are forgotten. */
  clear(tenant: string, login: string): Promise<void>;
}

/**
 * Failures slow the next answer, then lock the login name (and, far higher, the address)
 * for the rest of the window. The lock is counted per login name typed, so an unknown login
 * locks exactly like a real one and nothing tells which accounts exist.
 */
export function createLoginThrottle(
  limiters: LoginLimiters,
  limits: LoginThrottleLimits = DEFAULT_LOGIN_LIMITS,
  wait: (ms: number) => Promise<unknown> = sleep,
): LoginThrottle {
  const accountKeyOf = (tenant: string, login: string) => `${tenant}:${login.normalize('NFKC').toLowerCase()}`;
  return {
    async attempt(tenant, login, ip, check) {
      const accountKey = accountKeyOf(tenant, login);
      const addressKey = `${tenant}:${ip}`;
      const [account, address] = await Promise.all([limiters.account.get(accountKey), limiters.address.get(addressKey)]);
      const lockedFor = [
        account && account.consumedPoints >= limits.perAccount ? account.msBeforeNext : 0,
        address && address.consumedPoints >= limits.perAddress ? address.msBeforeNext : 0,
      ];
      const lockedMs = Math.max(...lockedFor);
      if (lockedMs > 0) return { ok: false, reason: 'locked', retryAfterSeconds: Math.ceil(lockedMs / 1000) };

      const value = await check();
      if (value !== undefined) return { ok: true, value };
      const failures = Math.max(account?.consumedPoints ?? 0, 0);
      await Promise.all([
        limiters.account.penalty(accountKey, 1),
        limiters.address.penalty(addressKey, 1),
      ]);
      await wait(Math.min(limits.maxDelayMs, failures * limits.delayPerFailureMs));
      return { ok: false, reason: 'invalid' };
    },
    async clear(tenant, login) {
      await limiters.account.delete(accountKeyOf(tenant, login));
    },
  };
}

/**
 * Password checks under a LoginThrottle that leave the count alone on success: the caller
 * clears it when the whole sign-in succeeds, or a known password would reset the count
 * between guesses of the second factor.
 */
export function throttledPasswordCheck(
  throttle: LoginThrottle,
  verify: (tenant: string, login: string, password: string) => Promise<{ id: string } | undefined>,
): LoginCheck {
  return async (tenant, login, password, ip) => {
    const outcome = await throttle.attempt(tenant, login, ip, () => verify(tenant, login, password));
    return outcome.ok ? { ok: true, user: outcome.value } : outcome;
  };
}

/** Password checks with brute-force limits where a right password is the whole sign-in: it clears the count. */
export function throttledLoginCheck(
  verify: (tenant: string, login: string, password: string) => Promise<{ id: string } | undefined>,
  limiters: LoginLimiters,
  limits: LoginThrottleLimits = DEFAULT_LOGIN_LIMITS,
  wait: (ms: number) => Promise<unknown> = sleep,
): LoginCheck {
  const throttle = createLoginThrottle(limiters, limits, wait);
  const check = throttledPasswordCheck(throttle, verify);
  return async (tenant, login, password, ip) => {
    const outcome = await check(tenant, login, password, ip);
    if (outcome.ok) await throttle.clear(tenant, login);
    return outcome;
  };
}
