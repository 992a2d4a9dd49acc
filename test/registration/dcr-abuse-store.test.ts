import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { RegistrationAbuseStore } from '../../src/registration/abuse/abuse-store.ts';
import { createMemoryRegistrationAbuseStore } from '../../src/registration/abuse/abuse-store.memory.ts';
import { createRedisRegistrationAbuseStore } from '../../src/registration/abuse/abuse-store.redis.ts';
import { registrationSource } from '../../src/registration/abuse/registration-limits.ts';
import { deleteRedisKeys, testServers, uniqueRedisPrefix } from '../support/servers.ts';

/**
 * One set of cases for both RegistrationAbuseStore backends: the race-sensitive ones run
 * concurrent callers, because the Redis store must decide single winners by itself.
 */
let tenants = 0;
const freshTenant = (): string => `t${(tenants += 1)}`;

const redisPrefix = uniqueRedisPrefix('dcr-abuse-store');
let redis: Redis | undefined;
afterAll(async () => {
  if (redis === undefined) return;
  await deleteRedisKeys(redis, redisPrefix);
  redis.disconnect();
});

const backends: Array<[string, () => RegistrationAbuseStore]> = [
  ['memory', createMemoryRegistrationAbuseStore],
  [
    'Redis',
    () => {
      redis ??= new Redis(testServers().redisUrl);
      return createRedisRegistrationAbuseStore(redis, { keyPrefix: redisPrefix });
    },
  ],
];

for (const [name, open] of backends) {
  describe(`registration abuse store: ${name}`, () => {
    it('admits clients up to the maximum, and 50 concurrent admissions never overshoot it', async () => {
      const store = open();
      const tenant = freshTenant();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.admitClient(tenant, `c${i}`, { max: 10, now: 1000 + i })),
      );
      expect(results.filter(Boolean)).toHaveLength(10);
      expect(await store.clientCount(tenant)).toBe(10);
      // Admitting an admitted client again is no new place.
      const admitted = results.indexOf(true);
      expect(await store.admitClient(tenant, `c${admitted}`, { max: 10, now: 5000 })).toBe(true);
      expect(await store.clientCount(tenant)).toBe(10);
      expect(await store.tenants()).toContain(tenant);
    });

    it('forgetting a client frees its place once, whoever else forgets it at the same time', async () => {
      const store = open();
      const tenant = freshTenant();
      expect(await store.admitClient(tenant, 'a', { max: 1, now: 1 })).toBe(true);
      expect(await store.admitClient(tenant, 'b', { max: 1, now: 2 })).toBe(false);
      const forgotten = await Promise.all(Array.from({ length: 10 }, () => store.forgetClient(tenant, 'a')));
      expect(forgotten.filter(Boolean)).toHaveLength(1);
      expect(await store.clientCount(tenant)).toBe(0);
      expect(await store.admitClient(tenant, 'b', { max: 1, now: 3 })).toBe(true);
      expect(await store.forgetClient(tenant, 'never-admitted')).toBe(false);
    });

    it('lets exactly one of 20 concurrent claims hold a fingerprint, and only its holder release it', async () => {
      const store = open();
      const tenant = freshTenant();
      const holders = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.claimFingerprint(tenant, 'fp-1', `c${i}`, 1000 + i)),
      );
      const winner = holders[0]?.clientId ?? '';
      expect(new Set(holders.map((h) => h.clientId))).toEqual(new Set([winner]));
      expect(new Set(holders.map((h) => h.claimedAt)).size).toBe(1);

      await store.releaseFingerprint(tenant, 'fp-1', winner === 'c1' ? 'c2' : 'c1');
      expect((await store.claimFingerprint(tenant, 'fp-1', 'late', 9999)).clientId).toBe(winner);
      await store.releaseFingerprint(tenant, 'fp-1', winner);
      expect(await store.claimFingerprint(tenant, 'fp-1', 'late', 9999)).toEqual({ clientId: 'late', claimedAt: 9999 });
    });

    it('releases the fingerprint of a client that is forgotten or whose metadata changed', async () => {
      const store = open();
      const tenant = freshTenant();
      await store.claimFingerprint(tenant, 'fp-a', 'a', 1);
      await store.admitClient(tenant, 'a', { max: 10, now: 1, fingerprint: 'fp-a' });
      await store.claimFingerprint(tenant, 'fp-b', 'b', 1);
      await store.admitClient(tenant, 'b', { max: 10, now: 1, fingerprint: 'fp-b' });

      await store.forgetClient(tenant, 'a');
      expect((await store.claimFingerprint(tenant, 'fp-a', 'x', 2)).clientId).toBe('x');

      await store.detachFingerprint(tenant, 'b');
      expect((await store.claimFingerprint(tenant, 'fp-b', 'y', 2)).clientId).toBe('y');
      // Detaching leaves the client admitted.
      expect(await store.clientCount(tenant)).toBe(1);
    });

    it('records the use of admitted clients only, and lists the unused ones oldest first', async () => {
      const store = open();
      const tenant = freshTenant();
      await store.admitClient(tenant, 'old', { max: 10, now: 1000 });
      await store.admitClient(tenant, 'older', { max: 10, now: 500 });
      await store.admitClient(tenant, 'used', { max: 10, now: 1000 });
      await store.recordUse(tenant, 'used', 5000);
      await store.recordUse(tenant, 'static-client', 5000);

      expect(await store.lastUse(tenant, 'used')).toBe(5000);
      expect(await store.lastUse(tenant, 'static-client')).toBeUndefined();
      expect(await store.unusedClients(tenant, 4000, 10)).toEqual(['older', 'old']);
      expect(await store.unusedClients(tenant, 4000, 1)).toEqual(['older']);
      expect(await store.unusedClients(tenant, 1000, 10)).toEqual(['older']);
      expect(await store.unusedClients(freshTenant(), 4000, 10)).toEqual([]);
    });

    it('counts registrations per tenant and source, refusing above the hourly limit with a retry time', async () => {
      const store = open();
      const tenant = freshTenant();
      for (let i = 0; i < 3; i += 1) expect(await store.countRegistration(tenant, '192.0.2.1', 3)).toEqual({ allowed: true });
      const refused = await store.countRegistration(tenant, '192.0.2.1', 3);
      expect(refused.allowed).toBe(false);
      if (!refused.allowed) {
        expect(refused.retryAfterSeconds).toBeGreaterThan(3500);
        expect(refused.retryAfterSeconds).toBeLessThanOrEqual(3600);
      }
      expect(await store.countRegistration(tenant, '192.0.2.2', 3)).toEqual({ allowed: true });
      expect(await store.countRegistration(freshTenant(), '192.0.2.1', 3)).toEqual({ allowed: true });
    });
  });
}

describe('registration sources', () => {
  it('counts IPv4 addresses singly, IPv6 by /64, and IPv4-mapped IPv6 as IPv4', () => {
    expect(registrationSource('192.0.2.7')).toBe('192.0.2.7');
    expect(registrationSource('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(registrationSource('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(registrationSource('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(registrationSource('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(registrationSource('::1')).toBe('0:0:0:0::/64');
    expect(registrationSource('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(registrationSource('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
    expect(registrationSource('')).toBe('unknown');
  });
});
