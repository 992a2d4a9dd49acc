import type { Payload } from '../model-store.ts';
import { CorruptRecordError, InvalidExpiryError, InvalidNamespaceError } from './store-errors.ts';

/**
 * Helpers every backend shares, so the three agree on what a namespace, an expiry and a
 * consumption time are (the contract suite holds them to it).
 */

// ':' separates namespace from id in keys, '{' '}' are Redis Cluster hash-tag delimiters:
// either in a namespace would let one tenant's keys collide with another's.
const NAMESPACE = /^[^\s:{}]{1,128}$/u;

export function assertNamespace(namespace: string): void {
  if (!NAMESPACE.test(namespace)) throw new InvalidNamespaceError(namespace);
}

/**
 * Absolute expiry (epoch ms) of a record written now with `expiresIn` seconds, or
 * undefined for a record that never expires. A remaining TTL of 0 or less (oidc-provider
 * re-saving a model at the end of its life) gives an expiry in the past: the caller
 * treats such a record as gone.
 */
export function expiresAtFrom(expiresIn: number | undefined, now: number): number | undefined {
  if (expiresIn === undefined) return undefined;
  if (!Number.isFinite(expiresIn)) throw new InvalidExpiryError(expiresIn);
  return now + Math.round(expiresIn * 1000);
}

export function isLive(expiresAt: number | undefined, now: number): boolean {
  return expiresAt === undefined || expiresAt > now;
}

/** oidc-provider's `consumed` is a NumericDate (seconds since the epoch). */
export function epochSeconds(now: number): number {
  return Math.floor(now / 1000);
}

/** oidc-provider payload fields that the stores index for lookups. */
export interface IndexedFields {
  grantId?: string;
  uid?: string;
  userCode?: string;
  /** Tokens, codes, grants and registration access tokens name their client (revokeByClientId). */
  clientId?: string;
}

export function indexedFields(payload: { grantId?: unknown; uid?: unknown; userCode?: unknown; clientId?: unknown }): IndexedFields {
  const fields: IndexedFields = {};
  if (typeof payload.grantId === 'string') fields.grantId = payload.grantId;
  if (typeof payload.uid === 'string') fields.uid = payload.uid;
  if (typeof payload.userCode === 'string') fields.userCode = payload.userCode;
  if (typeof payload.clientId === 'string') fields.clientId = payload.clientId;
  return fields;
}

/**
 * Payloads are stored as JSON text by the MongoDB and Redis backends: it round-trips
 * exactly, and FerretDB refuses field names with '.' or a leading '$', which claim names
 * (URLs, OIDC Core §5.1.2) and client metadata may well contain.
 */
export function serializePayload(payload: Payload): string {
  return JSON.stringify(payload);
}

export function parsePayload(text: unknown, where: string): Payload {
  if (typeof text !== 'string') throw new CorruptRecordError(where, 'payload is not a string');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CorruptRecordError(where, 'payload is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CorruptRecordError(where, 'payload is not a JSON object');
  }
  return value as Payload;
}
