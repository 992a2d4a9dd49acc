import { randomBytes } from 'node:crypto';

import { hash, verify, type Algorithm, type Options } from '@node-rs/argon2';

/** `Algorithm.Argon2id`; the package's enum is a `const enum`, unusable under isolatedModules. */
const ARGON2ID = 2 as Algorithm;

export interface Argon2Parameters {
  /** KiB of memory per hash. */
  readonly memoryCost: number;
  /** Passes over memory. */
  readonly timeCost: number;
  readonly parallelism: number;
}

/**
 * argon2id, m = 19 MiB, t = 2, p = 1: the first of OWASP's equivalent argon2id settings
 * (Password Storage Cheat Sheet) and RFC 9106's memory-constrained spirit; about 20-40 ms on
 * one core here. Output 32 bytes, 16-byte random salt (the library's defaults).
 */
export const DEFAULT_ARGON2_PARAMETERS: Argon2Parameters = {
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
};

/** Longer inputs are refused before hashing: argon2 of megabytes is a cheap DoS. */
export const MAX_PASSWORD_LENGTH = 1024;

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** false for a wrong password or an unparseable hash; never throws on bad input. */
  verify(passwordHash: string, password: string): Promise<boolean>;
  /**
   * Spends the time of one verify against a fixed hash made with the same parameters, so a
   * miss (unknown login, no password) costs what a wrong password costs.
   */
  verifyDummy(password: string): Promise<void>;
}

/**
 * NIST SP 800-63B 5.1.1.2: passwords are Unicode-normalised (NFKC) before hashing, so the
 * same password typed on two keyboards verifies.
 */
function normalise(password: string): string {
  return password.normalize('NFKC');
}

export function createPasswordHasher(
  parameters: Argon2Parameters = DEFAULT_ARGON2_PARAMETERS,
): PasswordHasher {
  const options: Options = { algorithm: ARGON2ID, ...parameters };
  let dummyHash: Promise<string> | undefined;

  async function verifyHash(passwordHash: string, password: string): Promise<boolean> {
    try {
      return await verify(passwordHash, normalise(password));
    } catch {
      return false;
    }
  }

  async function verifyDummy(password: string): Promise<void> {
    dummyHash ??= hash(randomBytes(32), options);
    await verifyHash(await dummyHash, password.slice(0, MAX_PASSWORD_LENGTH));
  }

  return {
    async hash(password) {
      if (password.length > MAX_PASSWORD_LENGTH) throw new RangeError('password too long');
      return hash(normalise(password), options);
    },
    async verify(passwordHash, password) {
      if (password.length > MAX_PASSWORD_LENGTH) {
        await verifyDummy(password);
        return false;
      }
      return verifyHash(passwordHash, password);
    },
    verifyDummy,
  };
}
