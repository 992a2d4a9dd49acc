/**
 * Errors the model stores throw on bad input from their caller. Each carries a stable
 * `code`, like jose's ERR_* codes, so callers and tests can tell them apart.
 */
export abstract class ModelStoreError extends Error {
  abstract readonly code: string;
}

/** Namespaces become part of keys (`<ns>:<id>`, `castellan:<ns>:...`), so separators are refused. */
export class InvalidNamespaceError extends ModelStoreError {
  readonly code = 'ERR_STORE_INVALID_NAMESPACE';
  constructor(namespace: string) {
    super(`invalid store namespace ${JSON.stringify(namespace.slice(0, 64))}: 1-128 characters, none of ':', '{', '}', whitespace`);
    this.name = 'InvalidNamespaceError';
  }
}

/** `expiresIn` must be a finite number of seconds (oidc-provider passes remaining TTLs). */
export class InvalidExpiryError extends ModelStoreError {
  readonly code = 'ERR_STORE_INVALID_EXPIRY';
  constructor(expiresIn: number) {
    super(`invalid expiresIn ${String(expiresIn)}: expected a finite number of seconds`);
    this.name = 'InvalidExpiryError';
  }
}

/** A stored record that is not what a store writes: a bug or tampering, never a miss. */
export class CorruptRecordError extends ModelStoreError {
  readonly code = 'ERR_STORE_CORRUPT_RECORD';
  constructor(where: string, detail: string) {
    super(`corrupt record at ${where}: ${detail}`);
    this.name = 'CorruptRecordError';
  }
}
