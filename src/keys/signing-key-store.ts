import type { JWK } from 'jose';

import type { EncryptedJwk } from './envelope.ts';

export const SIGNING_ALGS = ['RS256', 'ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

/**
 * Why a key was made. Only `prepared` keys are candidates for activateNext: a key made to
 * win an election (`election`, by ensureActiveKeys or rotate) belongs to its maker, who
 * deletes it after losing, so no other node may activate it in the meantime.
 */
export type KeyOrigin = 'prepared' | 'election';

/** One signing key. Immutable once written: its state is derived from activations. */
export interface SigningKeyRecord {
  /** RFC 7638 thumbprint of the public key; the document `_id`. */
  readonly kid: string;
  readonly tenant: string;
  readonly alg: SigningAlg;
  readonly origin: KeyOrigin;
  readonly createdAt: Date;
  readonly publicJwk: JWK;
  readonly encryptedPrivateJwk: EncryptedJwk;
}

/**
 * "kid became the active key of (tenant, alg) at this generation". Insert-only, `_id`
 * `<tenant>:<alg>:<generation>`: the unique `_id` elects exactly one kid per generation,
 * on MongoDB and on FerretDB alike (STORES.md).
 */
export interface ActivationRecord {
  readonly tenant: string;
  readonly alg: SigningAlg;
  readonly generation: number;
  readonly kid: string;
  readonly activatedAt: Date;
}

/**
 * Storage of signing keys: inserts, reads and deletes only, nothing read-modify-write.
 * Reads return copies; mutating them changes nothing stored.
 */
export interface SigningKeyStore {
  /** false when a key with this kid already exists. */
  insertKey(key: SigningKeyRecord): Promise<boolean>;
  getKey(kid: string): Promise<SigningKeyRecord | undefined>;
  /** Every key of the tenant, oldest first (createdAt, then kid). */
  listKeys(tenant: string): Promise<SigningKeyRecord[]>;
  deleteKey(kid: string): Promise<void>;
  /** Insert-only election: true for the one caller whose insert created the record. */
  tryActivate(activation: ActivationRecord): Promise<boolean>;
  /** The tenant's activations for alg, by ascending generation. */
  listActivations(tenant: string, alg: SigningAlg): Promise<ActivationRecord[]>;
}

export function activationId(tenant: string, alg: SigningAlg, generation: number): string {
  return `${tenant}:${alg}:${generation}`;
}

/** Stable order for listKeys on every backend. */
export function compareKeysByAge(a: SigningKeyRecord, b: SigningKeyRecord): number {
  return a.createdAt.getTime() - b.createdAt.getTime() || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0);
}
