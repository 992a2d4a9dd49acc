import type { RateVerdict } from '../../storage/rate-limits.ts';

export { rateVerdictOf, type RateVerdict } from '../../storage/rate-limits.ts';

/**
 * What Castellan counts and remembers about self-registered clients (RFC 7591), per tenant:
 * the registration rate per source address, which clients registered themselves (so only
 * those are ever swept, never operator or seeded clients) and when each was last used, and
 * the metadata fingerprints that make a public client's re-registration idempotent.
 *
 * Counters and "first one wins" decisions live in Redis in production (STORES.md: FerretDB
 * has no atomic conditional update, so never a MongoDB read-modify-write), in process memory
 * otherwise. Losing this state loses no access: clients stay registered; only the limits
 * start again from zero and old clients are no longer swept.
 */

/** Who holds a metadata fingerprint: the client it names, and when it was claimed (epoch ms). */
export interface FingerprintHolder {
  clientId: string;
  claimedAt: number;
}

export interface RegistrationAbuseStore {
  /**
   * Counts one registration request from `source` (an address or an IPv6 /64) in the
   * current hour (rate-limiter-flexible), refusing it above `perHour`.
   */
  countRegistration(tenant: string, source: string, perHour: number): Promise<RateVerdict>;

  /**
   * Admits a new self-registered client if the tenant holds fewer than `max`, atomically
   * (one Lua script; concurrent registrations never overshoot). Its last use starts at
   * `now`. Returns false when the tenant is full. Admitting an admitted client is a no-op.
   */
  admitClient(tenant: string, clientId: string, options: { max: number; now: number; fingerprint?: string }): Promise<boolean>;

  /**
   * Forgets a self-registered client (after its deletion, or a failed registration): frees
   * its place and releases its fingerprint. Returns whether it was admitted; a second call
   * returns false, so concurrent deleters free one place between them.
   */
  forgetClient(tenant: string, clientId: string): Promise<boolean>;

  /** Releases the fingerprint a client holds, if any (its metadata changed). */
  detachFingerprint(tenant: string, clientId: string): Promise<void>;

  /**
   * Claims `fingerprint` for `clientId` unless someone holds it (Redis SET NX; the one
   * winner is decided by the store). Returns the holder: `clientId` itself when claimed.
   */
  claimFingerprint(tenant: string, fingerprint: string, clientId: string, now: number): Promise<FingerprintHolder>;

  /** Releases `fingerprint` only while `clientId` holds it. */
  releaseFingerprint(tenant: string, fingerprint: string, clientId: string): Promise<void>;

  /** A successful token request: moves an admitted client's last use to `now`; others are ignored. */
  recordUse(tenant: string, clientId: string, now: number): Promise<void>;

  /** When an admitted client was last used (or admitted), epoch ms. */
  lastUse(tenant: string, clientId: string): Promise<number | undefined>;

  /** Up to `limit` admitted clients whose last use is before `before` (epoch ms), oldest first. */
  unusedClients(tenant: string, before: number, limit: number): Promise<string[]>;

  /** How many self-registered clients the tenant holds. */
  clientCount(tenant: string): Promise<number>;

  /** Tenants that have (had) self-registered clients: the sweeper's work list. */
  tenants(): Promise<string[]>;
}

/** The registration rate limit counts per hour (`limits.perIpPerHour`). */
export const RATE_WINDOW_SECONDS = 3600;

