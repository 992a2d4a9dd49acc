import { createHash, randomBytes } from 'node:crypto';

import { IV_BYTES, openAesGcm, sealAesGcm, TAG_BYTES } from './aes-gcm.ts';
import { InvalidKeyEncryptionKeyError, KeyDecryptionError } from './errors.ts';

/**
 * A data key wrapped by a key-encryption key (KEK). Plain and serialisable: it is stored
 * inside the key record. `wrapped` is opaque to everyone but the wrapper that made it.
 */
export interface WrappedKey {
  /** Which KEK wrapped it, so a deployment with several KEKs routes to the right one. */
  readonly kekId: string;
  /** The wrapping algorithm, e.g. 'A256GCM' for the local wrapper; a KMS names its own. */
  readonly alg: string;
  /** The wrapped key, base64url. */
  readonly wrapped: string;
}

/**
 * What a KMS (Vault transit, AWS/GCP KMS, an HSM) must offer to protect Castellan's data
 * keys. `context` is bound to the wrapped key (AAD / encryption context): unwrap with any
 * other context fails, so a wrapped key cannot be moved to another record.
 * Failures to unwrap throw KeyDecryptionError.
 */
export interface KeyWrapper {
  readonly kekId: string;
  wrap(dataKey: Uint8Array, context: string): Promise<WrappedKey>;
  unwrap(wrapped: WrappedKey, context: string): Promise<Uint8Array>;
}

const KEK_BYTES = 32;
const LOCAL_ALG = 'A256GCM';

/** A fresh random 256-bit key-encryption key, base64url, for settings. */
export function generateKeyEncryptionKey(): string {
  return randomBytes(KEK_BYTES).toString('base64url');
}

/** Accepts base64url or standard base64 (padded or not); never echoes the value in errors. */
export function decodeKeyEncryptionKey(encoded: string): Buffer {
  const normalised = encoded.trim().replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  if (!/^[A-Za-z0-9_-]+$/.test(normalised)) {
    throw new InvalidKeyEncryptionKeyError('key-encryption key is not base64url or base64');
  }
  const bytes = Buffer.from(normalised, 'base64url');
  if (bytes.length !== KEK_BYTES) {
    throw new InvalidKeyEncryptionKeyError(
      `key-encryption key must be ${KEK_BYTES} bytes, got ${bytes.length}`,
    );
  }
  return bytes;
}

/**
 * A default kekId derived from the KEK: a truncated SHA-256 of a 256-bit random key reveals
 * nothing usable, and lets unwrap tell "wrong KEK" from "tampered record".
 */
function deriveKekId(kek: Buffer): string {
  const digest = createHash('sha256').update('castellan/kek-id/v1\0').update(kek).digest();
  return `local:${digest.subarray(0, 9).toString('base64url')}`;
}

export interface LocalKeyWrapperOptions {
  /** Overrides the kekId derived from the key, e.g. a name from a KEK rotation plan. */
  readonly kekId?: string;
}

/**
 * A KeyWrapper holding the KEK in process memory (from settings), AES-256-GCM with the
 * context as AAD. The KEK buffer is private to the closure.
 */
export function createLocalKeyWrapper(
  encodedKek: string,
  options: LocalKeyWrapperOptions = {},
): KeyWrapper {
  const kek = decodeKeyEncryptionKey(encodedKek);
  const kekId = options.kekId ?? deriveKekId(kek);
  return {
    kekId,
    async wrap(dataKey, context) {
      const { iv, ciphertext, tag } = sealAesGcm(kek, dataKey, context);
      return { kekId, alg: LOCAL_ALG, wrapped: Buffer.concat([iv, ciphertext, tag]).toString('base64url') };
    },
    async unwrap(wrapped, context) {
      if (wrapped.kekId !== kekId) {
        throw new KeyDecryptionError(`data key was wrapped by another key-encryption key (${wrapped.kekId})`);
      }
      if (wrapped.alg !== LOCAL_ALG) {
        throw new KeyDecryptionError(`unsupported wrapping algorithm ${wrapped.alg}`);
      }
      const bytes = Buffer.from(wrapped.wrapped, 'base64url');
      if (bytes.length < IV_BYTES + TAG_BYTES) {
        throw new KeyDecryptionError('wrapped key too short');
      }
      return openAesGcm(kek, {
        iv: bytes.subarray(0, IV_BYTES),
        ciphertext: bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES),
        tag: bytes.subarray(bytes.length - TAG_BYTES),
      }, context);
    },
  };
}

/**
 * KEK rotation: wrap with `primary`, unwrap with whichever wrapper's kekId matches, so keys
 * wrapped by a previous KEK stay readable until they are re-wrapped or removed.
 */
export function combineKeyWrappers(primary: KeyWrapper, previous: readonly KeyWrapper[]): KeyWrapper {
  const byId = new Map<string, KeyWrapper>([primary, ...previous].map((w) => [w.kekId, w]));
  return {
    kekId: primary.kekId,
    wrap: (dataKey, context) => primary.wrap(dataKey, context),
    async unwrap(wrapped, context) {
      const wrapper = byId.get(wrapped.kekId);
      if (!wrapper) {
        throw new KeyDecryptionError(`no key-encryption key with id ${wrapped.kekId}`);
      }
      return wrapper.unwrap(wrapped, context);
    },
  };
}
