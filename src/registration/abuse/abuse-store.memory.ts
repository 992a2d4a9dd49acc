import { RateLimiterMemory } from 'rate-limiter-flexible';
import { limiterPerLimit } from '../../storage/rate-limits.ts';
import { RATE_WINDOW_SECONDS, rateVerdictOf, type FingerprintHolder, type RegistrationAbuseStore } from './abuse-store.ts';

/**
 * The in-process RegistrationAbuseStore: the memory store's counterpart (tests, `npm start`),
 * and the fallback of MongoDB without Redis, where its limits hold per process only. Every
 * method runs without an await between its read and its write, so each is atomic on Node's
 * single thread.
 */

interface TenantState {
  /** clientId → last use (epoch ms) of every admitted client. */
  clients: Map<string, number>;
  /** clientId → the fingerprint it holds. */
  fingerprintOf: Map<string, string>;
  /** fingerprint → holder. */
  holders: Map<string, FingerprintHolder>;
}

export function createMemoryRegistrationAbuseStore(): RegistrationAbuseStore {
  const tenants = new Map<string, TenantState>();
  const limiterFor = limiterPerLimit((limit) => new RateLimiterMemory({ keyPrefix: 'dcr', points: limit.points, duration: limit.durationSeconds }));

  function state(tenant: string): TenantState {
    let found = tenants.get(tenant);
    if (found === undefined) {
      found = { clients: new Map(), fingerprintOf: new Map(), holders: new Map() };
      tenants.set(tenant, found);
    }
    return found;
  }

  function release(s: TenantState, fingerprint: string, clientId: string): void {
    if (s.holders.get(fingerprint)?.clientId === clientId) s.holders.delete(fingerprint);
  }

  function detach(s: TenantState, clientId: string): void {
    const fingerprint = s.fingerprintOf.get(clientId);
    s.fingerprintOf.delete(clientId);
    if (fingerprint !== undefined) release(s, fingerprint, clientId);
  }

  return {
    async countRegistration(tenant, source, perHour) {
      const limiter = limiterFor({ points: perHour, durationSeconds: RATE_WINDOW_SECONDS });
      return rateVerdictOf(limiter.consume(`${tenant}:${source}`));
    },
    async admitClient(tenant, clientId, { max, now, fingerprint }) {
      const s = state(tenant);
      if (s.clients.has(clientId)) return true;
      if (s.clients.size >= max) return false;
      s.clients.set(clientId, now);
      if (fingerprint !== undefined) s.fingerprintOf.set(clientId, fingerprint);
      return true;
    },
    async forgetClient(tenant, clientId) {
      const s = state(tenant);
      detach(s, clientId);
      return s.clients.delete(clientId);
    },
    async detachFingerprint(tenant, clientId) {
      detach(state(tenant), clientId);
    },
    async claimFingerprint(tenant, fingerprint, clientId, now) {
      const s = state(tenant);
      const holder = s.holders.get(fingerprint);
      if (holder !== undefined) return { ...holder };
      s.holders.set(fingerprint, { clientId, claimedAt: now });
      return { clientId, claimedAt: now };
    },
    async releaseFingerprint(tenant, fingerprint, clientId) {
      release(state(tenant), fingerprint, clientId);
    },
    async recordUse(tenant, clientId, now) {
      const s = tenants.get(tenant);
      if (s?.clients.has(clientId)) s.clients.set(clientId, now);
    },
    async lastUse(tenant, clientId) {
      return tenants.get(tenant)?.clients.get(clientId);
    },
    async unusedClients(tenant, before, limit) {
      const s = tenants.get(tenant);
      if (s === undefined) return [];
      return [...s.clients]
        .filter(([, used]) => used < before)
        .sort(([, a], [, b]) => a - b)
        .slice(0, limit)
        .map(([clientId]) => clientId);
    },
    async clientCount(tenant) {
      return tenants.get(tenant)?.clients.size ?? 0;
    },
    async tenants() {
      return [...tenants.keys()];
    },
  };
}
