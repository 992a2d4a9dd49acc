import { createHash } from 'node:crypto';
import type { Client } from 'oidc-provider';
import type { RegistrationAbuseStore } from './abuse-store.ts';

/**
 * Idempotent re-registration of public clients. MCP clients register on every connect; a
 * public client (token_endpoint_auth_method none, so no secret to hand out again) that
 * sends metadata identical to an earlier registration gets that client back instead of a
 * new one. The fingerprint → client_id mapping is claimed before the client exists, with
 * the client_id the registration will get (registration-client-id.ts), so two identical
 * registrations racing each other end with one client: the store decides the one holder.
 * Confidential clients always get a new registration: their secret is shown only once.
 */

/** Arrays whose order says nothing: compared as sets. */
const SET_LIKE = new Set(['redirect_uris', 'post_logout_redirect_uris', 'grant_types', 'response_types', 'contacts']);
/** A holder whose client has not appeared after this long is taken to have failed. */
const IN_FLIGHT_MS = 5_000;
const POLL_MS = 100;
/** Stale holders replaced per registration before giving up on idempotence. */
const MAX_STALE = 3;

function normalised(name: string, value: unknown): unknown {
  if (SET_LIKE.has(name) && Array.isArray(value)) return [...new Set(value.map((v) => JSON.stringify(canonical(v))))].sort();
  if (name === 'scope' && typeof value === 'string') return [...new Set(value.split(' ').filter(Boolean))].sort().join(' ');
  return canonical(value);
}

/** Objects with sorted keys, so equal values serialise equally. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}

function canonicalText(metadata: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(
    Object.keys(metadata)
      .filter((name) => metadata[name] !== undefined)
      .sort()
      .map((name) => [name, normalised(name, metadata[name])]),
  );
}

/** SHA-256 of the canonical JSON of checked (normalised) client metadata. */
export function registrationFingerprint(metadata: Readonly<Record<string, unknown>>): string {
  return createHash('sha256').update(canonicalText(metadata)).digest('base64url');
}

/**
 * Whether a stored client still says what the request says: every requested member equal.
 * Guards against a mapping that outlived a change of the client (an operator's edit).
 */
export function clientMatches(requested: Readonly<Record<string, unknown>>, stored: Readonly<Record<string, unknown>>): boolean {
  const projected = Object.fromEntries(Object.keys(requested).map((name) => [name, stored[name]]));
  return canonicalText(requested) === canonicalText(projected);
}

export interface IdempotencyDeps {
  abuse: RegistrationAbuseStore;
  findClient(clientId: string): Promise<Client | undefined>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export type RegistrationOutcome =
  /** Identical metadata was registered before: answer with that client. */
  | { kind: 'existing'; client: Client }
  /** Register `clientId`; it holds `fingerprint` (undefined: idempotence gave up, see below). */
  | { kind: 'new'; fingerprint: string | undefined };

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Claims the metadata's fingerprint for `clientId`, or finds the client that holds it.
 * A holder whose client is missing is either still being registered (wait for it) or
 * failed (its claim is stale after IN_FLIGHT_MS); a holder whose client no longer matches is
 * stale too. Stale claims are released and the claim retried; after MAX_STALE of them the
 * registration goes ahead without a fingerprint (a new client, as without idempotence).
 */
export async function claimRegistration(
  deps: IdempotencyDeps,
  tenant: string,
  metadata: Readonly<Record<string, unknown>>,
  clientId: string,
): Promise<RegistrationOutcome> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? pause;
  const fingerprint = registrationFingerprint(metadata);
  let stale = 0;
  const deadline = now() + IN_FLIGHT_MS + POLL_MS;
  while (stale < MAX_STALE && now() <= deadline) {
    const holder = await deps.abuse.claimFingerprint(tenant, fingerprint, clientId, now());
    if (holder.clientId === clientId) return { kind: 'new', fingerprint };
    const client = await deps.findClient(holder.clientId);
    if (client === undefined && now() - holder.claimedAt < IN_FLIGHT_MS) {
      await sleep(POLL_MS);
      continue;
    }
    if (client !== undefined && clientMatches(metadata, client.metadata())) return { kind: 'existing', client };
    await deps.abuse.releaseFingerprint(tenant, fingerprint, holder.clientId);
    stale += 1;
  }
  return { kind: 'new', fingerprint: undefined };
}
