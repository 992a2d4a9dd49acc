import { randomBytes } from 'node:crypto';

import type { JWK } from 'jose';
import { z } from 'zod';

import { openAesGcm, sealAesGcm } from './aes-gcm.ts';
import { KeyDecryptionError } from './errors.ts';
import type { KeyWrapper, WrappedKey } from './kms.ts';

/**
 * A private JWK encrypted at rest (envelope encryption): the JWK JSON under a random
 * 256-bit data key with AES-256-GCM, the data key wrapped by a KeyWrapper. Both layers
 * authenticate `context` (tenant + kid), so a record copied onto another key fails.
 * All binary values are base64url; the record is plain JSON / BSON.
 */
export interface EncryptedJwk {
  readonly v: 1;
  readonly enc: 'A256GCM';
  readonly iv: string;
  readonly ciphertext: string;
  readonly tag: string;
  readonly wrappedKey: WrappedKey;
}

const b64url = z.string().regex(/^[A-Za-z0-9_-]*$/);

const encryptedJwkSchema = z.object({
  v: z.literal(1),
  enc: z.literal('A256GCM'),
  iv: b64url,
  ciphertext: b64url,
  tag: b64url,
  wrappedKey: z.object({ kekId: z.string(), alg: z.string(), wrapped: b64url }),
});

const DATA_KEY_BYTES = 32;

export async function encryptPrivateJwk(
  jwk: JWK,
  wrapper: KeyWrapper,
  context: string,
): Promise<EncryptedJwk> {
  const dataKey = randomBytes(DATA_KEY_BYTES);
  const plaintext = Buffer.from(JSON.stringify(jwk), 'utf8');
  try {
    const { iv, ciphertext, tag } = sealAesGcm(dataKey, plaintext, context);
    const wrappedKey = await wrapper.wrap(dataKey, context);
    return {
      v: 1,
      enc: 'A256GCM',
      iv: iv.toString('base64url'),
      ciphertext: ciphertext.toString('base64url'),
      tag: tag.toString('base64url'),
      wrappedKey: { kekId: wrappedKey.kekId, alg: wrappedKey.alg, wrapped: wrappedKey.wrapped },
    };
  } finally {
    // Keep key material in memory no longer than needed.
    dataKey.fill(0);
    plaintext.fill(0);
  }
}

/** Throws KeyDecryptionError for a wrong KEK, a wrong context, or any tampering. */
export async function decryptPrivateJwk(
  record: unknown,
  wrapper: KeyWrapper,
  context: string,
): Promise<JWK> {
  const parsed = encryptedJwkSchema.safeParse(record);
  if (!parsed.success) {
    throw new KeyDecryptionError('malformed encrypted key record');
  }
  const { iv, ciphertext, tag, wrappedKey } = parsed.data;
  const dataKey = await unwrapOrThrowTyped(wrapper, wrappedKey, context);
  let plaintext: Buffer | undefined;
  try {
    if (dataKey.length !== DATA_KEY_BYTES) {
      throw new KeyDecryptionError('unwrapped data key has the wrong size');
    }
    plaintext = openAesGcm(
      dataKey,
      {
        iv: Buffer.from(iv, 'base64url'),
        ciphertext: Buffer.from(ciphertext, 'base64url'),
        tag: Buffer.from(tag, 'base64url'),
      },
      context,
    );
    const jwk: unknown = JSON.parse(plaintext.toString('utf8'));
    if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) {
      throw new KeyDecryptionError('decrypted key is not a JWK object');
    }
    return jwk as JWK;
  } finally {
    dataKey.fill(0);
    plaintext?.fill(0);
  }
}

/** A KMS adapter may throw its own errors; callers see one typed error either way. */
async function unwrapOrThrowTyped(
  wrapper: KeyWrapper,
  wrappedKey: WrappedKey,
  context: string,
): Promise<Uint8Array> {
  try {
    return await wrapper.unwrap(wrappedKey, context);
  } catch (cause) {
    if (cause instanceof KeyDecryptionError) throw cause;
    throw new KeyDecryptionError('data key could not be unwrapped', { cause });
  }
}
