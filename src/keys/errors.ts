/**
 * Typed errors of the key subsystem. Each carries a stable `code` (as jose's errors do), so
 * callers and tests branch on the code, never on a message.
 */

/** Wrong key-encryption key, tampered or malformed record, or a record moved to another key. */
export class KeyDecryptionError extends Error {
  readonly code = 'KEY_DECRYPTION_FAILED';
  override readonly name = 'KeyDecryptionError';
}

/** The configured key-encryption key is not 32 bytes of base64url / base64. */
export class InvalidKeyEncryptionKeyError extends Error {
  readonly code = 'INVALID_KEY_ENCRYPTION_KEY';
  override readonly name = 'InvalidKeyEncryptionKeyError';
}

/** activateNext found no prepared key to activate. */
export class NoNextKeyError extends Error {
  readonly code = 'NO_NEXT_KEY';
  override readonly name = 'NoNextKeyError';
}

/** A stored key record does not belong where it was found (wrong tenant, alg or kid). */
export class KeyIntegrityError extends Error {
  readonly code = 'KEY_INTEGRITY_FAILED';
  override readonly name = 'KeyIntegrityError';
}
