import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { limiterPerLimit, rateVerdictOf, type RateLimit, type RateVerdict } from '../../storage/rate-limits.ts';

/** RFC 8628 §3.5: each too-early poll adds 5 seconds to the interval the device must keep. */
export const SLOW_DOWN_STEP_SECONDS = 5;
/** How long a device code's polling record is kept: beyond any device code's lifetime. */
const POLL_RECORD_TTL_MS = 30 * 60 * 1000;

export type PollVerdict = { ok: true } | { ok: false; intervalSeconds: number };

/**
 * The device flow's abuse limits: polling no faster than the (growing) interval, and a
 * bounded number of user-code attempts per address and per browser session (a user code
 * has ~34 bits; guessing must stay hopeless).
 */
export interface DeviceLimits {
  poll(tenant: string, deviceCode: string, intervalSeconds: number, now?: number): Promise<PollVerdict>;
  attempt(tenant: string, key: string, limit: AttemptLimit): Promise<RateVerdict>;
}

export interface AttemptLimit {
  /** User-code attempts allowed per key per window. */
  attempts: number;
  windowSeconds: number;
}


const asRateLimit = (limit: AttemptLimit): RateLimit => ({ points: limit.attempts, durationSeconds: limit.windowSeconds });

const digest = (value: string) => createHash('sha256').update(value).digest('base64url');

/** Polling state in Redis, updated by one Lua script: concurrent polls cannot both pass. */
const POLL_SCRIPT = `
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local interval = tonumber(redis.call('HGET', KEYS[1], 'interval') or ARGV[2])
local now = tonumber(ARGV[1])
local verdict = 1
if last > 0 and now - last < interval * 1000 then
  interval = interval + tonumber(ARGV[3])
  verdict = 0
end
redis.call('HSET', KEYS[1], 'last', now, 'interval', interval)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {verdict, interval}
`;

export function createRedisDeviceLimits(redis: Redis | Cluster, prefix: string): DeviceLimits {
  const limiterFor = limiterPerLimit((limit) => new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${prefix}:device-attempts:${limit.points}:${limit.durationSeconds}`,
    points: limit.points,
    duration: limit.durationSeconds,
  }));
  return {
    async poll(tenant, deviceCode, intervalSeconds, now = Date.now()) {
      const [verdict, interval] = (await redis.eval(
        POLL_SCRIPT, 1, `${prefix}:device-poll:{${tenant}}:${digest(deviceCode)}`,
        now, intervalSeconds, SLOW_DOWN_STEP_SECONDS, POLL_RECORD_TTL_MS,
      )) as [number, number];
      return verdict === 1 ? { ok: true } : { ok: false, intervalSeconds: interval };
    },
    attempt: (tenant, key, limit) => rateVerdictOf(limiterFor(asRateLimit(limit)).consume(`${tenant}:${key}`)),
  };
}

export function createMemoryDeviceLimits(): DeviceLimits {
  const polls = new Map<string, { last: number; interval: number }>();
  const limiterFor = limiterPerLimit((limit): RateLimiterAbstract => new RateLimiterMemory({ points: limit.points, duration: limit.durationSeconds }));
  return {
    async poll(tenant, deviceCode, intervalSeconds, now = Date.now()) {
      const key = `${tenant}:${digest(deviceCode)}`;
      for (const [k, v] of polls) if (now - v.last > POLL_RECORD_TTL_MS) polls.delete(k);
      const record = polls.get(key);
      if (record && now - record.last < record.interval * 1000) {
        record.interval += SLOW_DOWN_STEP_SECONDS;
        record.last = now;
        return { ok: false, intervalSeconds: record.interval };
      }
      polls.set(key, { last: now, interval: record?.interval ?? intervalSeconds });
      return { ok: true };
    },
    attempt: (tenant, key, limit) => rateVerdictOf(limiterFor(asRateLimit(limit)).consume(`${tenant}:${key}`)),
  };
}
