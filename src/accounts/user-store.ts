import { randomBytes } from 'node:crypto';

import { z } from 'zod';

import type { EncryptedJwk } from '../keys/envelope.ts';
import { tenantIdSchema } from '../tenants/tenant-store.ts';

/** Standard claims Castellan knows by name (OIDC Core 5.1); any other claim is allowed. */
export interface UserClaims {
  email?: string;
  email_verified?: boolean;
  name?: string;
  given_name?: string;
  family_name?: string;
  preferred_username?: string;
  [claim: string]: unknown;
}

export interface UserRecord {
  readonly tenant: string;
  /** Opaque random subject (`sub`); never derived from the login. */
  readonly id: string;
  /** As the user typed it at creation; lookups are case-insensitive. */
  readonly login: string;
  /** argon2id PHC string; absent for users who only sign in upstream. */
  readonly passwordHash?: string;
  readonly claims: UserClaims;
  readonly createdAt: Date;
  /** Present while the user has a TOTP second factor (RFC 6238). */
  readonly totp?: TotpEnrolment;
}

/** A user's TOTP factor as stored: nothing in it is usable without the key-encryption key. */
export interface TotpEnrolment {
  /** Random id of this enrolment: replay marks and the secret's sealing context name it. */
  readonly id: string;
  /** The shared secret as a symmetric JWK (`kty` "oct"), sealed by src/keys/envelope.ts. */
  readonly secret: EncryptedJwk;
  /** SHA-256 (base64url) of each recovery code not used yet; the codes are random, 80 bits. */
  readonly recoveryCodeHashes: readonly string[];
  readonly enabledAt: Date;
}

export interface NewUserRecord {
  readonly tenant: string;
  readonly login: string;
  readonly passwordHash?: string;
  readonly claims?: UserClaims;
}

/** A page of an operator's listing: ids after `after` (the previous page's last), at most `limit` (default 1000). */
export interface ListPage {
  readonly after?: string;
  readonly limit?: number;
}

export interface UserStore {
  /**
   * Creates the user with a fresh random id. Throws LoginTakenError when the login is
   * taken in this tenant (compared case-insensitively), InvalidUserError on bad input.
   */
  create(user: NewUserRecord): Promise<UserRecord>;
  findById(tenant: string, id: string): Promise<UserRecord | undefined>;
  findByLogin(tenant: string, login: string): Promise<UserRecord | undefined>;
  /**
   * Sets (or, with undefined, removes) the user's TOTP factor: a plain write by `_id`.
   * false when there is no such user.
   */
  setTotp(tenant: string, id: string, totp: TotpEnrolment | undefined): Promise<boolean>;
  /**
   * Replaces the unused recovery codes of enrolment `enrolmentId`; does nothing if the user's
   * enrolment has changed since. Not atomic on FerretDB: single use of a code is decided by
   * a one-time mark (src/storage/one-time-marks.ts), this list only follows it.
   */
  setRecoveryCodeHashes(tenant: string, id: string, enrolmentId: string, hashes: readonly string[]): Promise<void>;
  /** The tenant's users by id, at most `limit` (operators only: a scan on FerretDB). */
  list(tenant: string, page?: ListPage): Promise<UserRecord[]>;
  /** Removes the user and frees its login; false when there is no such user. */
  delete(tenant: string, id: string): Promise<boolean>;
}

export interface UserStoreOptions {
  readonly now?: () => Date;
}

export class LoginTakenError extends Error {
  readonly code = 'LOGIN_TAKEN';
  override readonly name = 'LoginTakenError';
}

export class InvalidUserError extends Error {
  readonly code = 'INVALID_USER';
  override readonly name = 'InvalidUserError';
}

/**
 * The login's identity for uniqueness: NFKC (so look-alike compatibility forms collapse)
 * and lower case. Stored logins keep their original spelling.
 */
export function normalizeLogin(login: string): string {
  return login.normalize('NFKC').toLowerCase();
}

/** `_id` of the login index: "<tenant>:<normalised login>" (tenant ids hold no ':'). */
export function loginKey(tenant: string, login: string): string {
  return `${tenant}:${normalizeLogin(login)}`;
}

export function userKey(tenant: string, id: string): string {
  return `${tenant}:${id}`;
}

export function newUserId(): string {
  return randomBytes(16).toString('base64url');
}

const loginSchema = z
  .string()
  .min(1)
  .max(254)
  .refine((s) => s === s.trim(), 'login must not start or end with white space')
  .refine((s) => !/\p{C}/u.test(s), 'login must not contain control or format characters');

const newUserSchema = z.object({
  tenant: tenantIdSchema,
  login: loginSchema,
  passwordHash: z.string().startsWith('$argon2').optional(),
  claims: z
    .record(z.string(), z.unknown())
    .refine((c) => !('sub' in c), 'claims must not set sub: the user id is the subject')
    .optional(),
});

/** The one validation both backends run at the edge of create. */
export function parseNewUser(user: NewUserRecord): NewUserRecord & { claims: UserClaims } {
  const parsed = newUserSchema.safeParse(user);
  if (!parsed.success) throw new InvalidUserError(z.prettifyError(parsed.error));
  const { tenant, login, passwordHash, claims } = parsed.data;
  return { tenant, login, ...(passwordHash !== undefined && { passwordHash }), claims: claims ?? {} };
}
