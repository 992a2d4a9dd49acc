import { RateLimiterRedis } from 'rate-limiter-flexible';
import { Script } from '../../storage/redis/lua-script.ts';
import type { RedisClient } from '../../storage/redis/redis-model-store.ts';
import { limiterPerLimit } from '../../storage/rate-limits.ts';
import { RATE_WINDOW_SECONDS, rateVerdictOf, type FingerprintHolder, type RegistrationAbuseStore } from './abuse-store.ts';

/**
 * The Redis RegistrationAbuseStore. Keys, with P the key prefix (default `castellan`):
 *
 *   P:dcr:{<tenant>}:clients          sorted set: self-registered clientId → last use (epoch ms)
 *   P:dcr:{<tenant>}:fingerprint-of   hash: clientId → the metadata fingerprint it holds
 *   P:dcr:{<tenant>}:fp:<fingerprint> "<clientId> <claimedAt>", claimed with SET NX semantics
 *   P:dcr:tenants                     set of tenants with self-registered clients
 *   P:dcr-rate:<tenant>:<source>      rate-limiter-flexible's counter of one hour
 *
 * The number of self-registered clients is the cardinality of the `clients` set: admission
 * adds to it only below the maximum, in one script, so concurrent registrations never
 * overshoot; deletion removes from it. Unlike a separate INCR/DECR counter it cannot drift
 * when a registration fails or a process dies between the count and the client: a member
 * without a client is swept like an unused client. A tenant's keys share the hash tag
 * `{<tenant>}`, so every script stays in one slot on Redis Cluster.
 */

/**
 * KEYS[1] clients, KEYS[2] fingerprint-of; ARGV[1] clientId, ARGV[2] now, ARGV[3] max,
 * ARGV[4] fingerprint or ''. Returns 1 when admitted (or already), 0 when the tenant is full.
 */
const ADMIT = new Script(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[4]) end
return 1
`);

/**
 * KEYS[1] clients, KEYS[2] fingerprint-of; ARGV[1] clientId, ARGV[2] '1' to forget the
 * admission too. Returns { removed (0|1), fingerprint or nil }.
 */
const FORGET = new Script(`
local removed = 0
if ARGV[2] == '1' then removed = redis.call('ZREM', KEYS[1], ARGV[1]) end
local fingerprint = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return { removed, fingerprint }
`);

/** KEYS[1] fingerprint; ARGV[1] the value to claim it with. Returns the holder's value. */
const CLAIM = new Script(`
local holder = redis.call('GET', KEYS[1])
if holder then return holder end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`);

/** KEYS[1] fingerprint; ARGV[1] clientId. Deletes it only while that client holds it. */
const RELEASE = new Script(`
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0
`);

function parseHolder(value: unknown): FingerprintHolder {
  const [clientId, claimedAt] = String(value).split(' ');
  return { clientId: clientId ?? '', claimedAt: Number(claimedAt) };
}

export interface RedisRegistrationAbuseStoreOptions {
  /** First segment of every key. Default `castellan`. */
  keyPrefix?: string;
}

/** On a shared ioredis connection (standalone, Sentinel or Cluster); the caller owns it. */
export function createRedisRegistrationAbuseStore(
  redis: RedisClient,
  options: RedisRegistrationAbuseStoreOptions = {},
): RegistrationAbuseStore {
  const prefix = options.keyPrefix ?? 'castellan';
  const limiterFor = limiterPerLimit((limit) => new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${prefix}:dcr-rate`,
    points: limit.points,
    duration: limit.durationSeconds,
  }));
  const tenantKey = (tenant: string, name: string): string => `${prefix}:dcr:{${tenant}}:${name}`;
  const clientsKey = (tenant: string): string => tenantKey(tenant, 'clients');
  const fingerprintOfKey = (tenant: string): string => tenantKey(tenant, 'fingerprint-of');
  const fingerprintKey = (tenant: string, fingerprint: string): string => tenantKey(tenant, `fp:${fingerprint}`);
  const tenantsKey = `${prefix}:dcr:tenants`;

  async function forget(tenant: string, clientId: string, admission: boolean): Promise<boolean> {
    const [removed, fingerprint] = (await FORGET.run(redis, [clientsKey(tenant), fingerprintOfKey(tenant)], [
      clientId,
      admission ? '1' : '0',
    ])) as [number, string | null];
    if (typeof fingerprint === 'string') await RELEASE.run(redis, [fingerprintKey(tenant, fingerprint)], [clientId]);
    return removed === 1;
  }

  return {
    async countRegistration(tenant, source, perHour) {
      const limiter = limiterFor({ points: perHour, durationSeconds: RATE_WINDOW_SECONDS });
      return rateVerdictOf(limiter.consume(`${tenant}:${source}`));
    },
    async admitClient(tenant, clientId, { max, now, fingerprint }) {
      const admitted = await ADMIT.run(redis, [clientsKey(tenant), fingerprintOfKey(tenant)], [clientId, now, max, fingerprint ?? '']);
      if (admitted !== 1) return false;
      await redis.sadd(tenantsKey, tenant);
      return true;
    },
    forgetClient: (tenant, clientId) => forget(tenant, clientId, true),
    async detachFingerprint(tenant, clientId) {
      await forget(tenant, clientId, false);
    },
    async claimFingerprint(tenant, fingerprint, clientId, now) {
      return parseHolder(await CLAIM.run(redis, [fingerprintKey(tenant, fingerprint)], [`${clientId} ${now}`]));
    },
    async releaseFingerprint(tenant, fingerprint, clientId) {
      await RELEASE.run(redis, [fingerprintKey(tenant, fingerprint)], [clientId]);
    },
    async recordUse(tenant, clientId, now) {
      // XX: only clients that registered themselves are tracked.
      await redis.zadd(clientsKey(tenant), 'XX', now, clientId);
    },
    async lastUse(tenant, clientId) {
      const score = await redis.zscore(clientsKey(tenant), clientId);
      return score === null ? undefined : Number(score);
    },
    async unusedClients(tenant, before, limit) {
      return redis.zrangebyscore(clientsKey(tenant), '-inf', `(${before}`, 'LIMIT', 0, limit);
    },
    async clientCount(tenant) {
      return redis.zcard(clientsKey(tenant));
    },
    async tenants() {
      return redis.smembers(tenantsKey);
    },
  };
}
