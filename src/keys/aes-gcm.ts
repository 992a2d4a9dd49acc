import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

import { KeyDecryptionError } from './errors.ts';

export const IV_BYTES = 12; // 96-bit random IV: GCM's native size (NIST SP 800-38D 8.2)
export const TAG_BYTES = 16;

export interface Sealed {
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

/** AES-256-GCM with a fresh random IV; `aad` is authenticated, not encrypted. */
export function sealAesGcm(key: Uint8Array, plaintext: Uint8Array, aad: string): Sealed {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, ciphertext, tag: cipher.getAuthTag() };
}

/** Reverses sealAesGcm; any failure (wrong key, wrong AAD, tampering, bad sizes) throws. */
export function openAesGcm(key: Uint8Array, sealed: Sealed, aad: string): Buffer {
  if (sealed.iv.length !== IV_BYTES || sealed.tag.length !== TAG_BYTES) {
    throw new KeyDecryptionError('malformed AES-GCM parameters');
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv, { authTagLength: TAG_BYTES });
    decipher.setAuthTag(sealed.tag);
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch (cause) {
    throw new KeyDecryptionError('authenticated decryption failed', { cause });
  }
}
