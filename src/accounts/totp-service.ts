import { randomBytes } from 'node:crypto';
import { decryptPrivateJwk, encryptPrivateJwk, type EncryptedJwk } from '../keys/envelope.ts';
import type { KeyWrapper } from '../keys/kms.ts';
import type { OneTimeMarks } from '../storage/one-time-marks.ts';
import type { AccountService } from './accounts.ts';
import {
  TOTP_PERIOD_SECONDS,
  TOTP_WINDOW,
  groupSecret,
  hashRecoveryCode,
  matchTotp,
  newRecoveryCodes,
  newTotpSecret,
  normaliseRecoveryCode,
  secretToBase32,
  totpUri,
} from './totp.ts';

/** A secret offered to a user but not confirmed yet: sealed, so short-lived state holds no clear secret either. */
export interface PendingTotp {
  readonly enrolmentId: string;
  readonly secret: EncryptedJwk;
}

export interface TotpService {
  /** A fresh secret for the user, sealed; nothing is stored. */
  begin(tenant: string, userId: string): Promise<PendingTotp>;
  /** The enrolment page's content: the secret in groups of four and the otpauth:// URI. */
  reveal(tenant: string, userId: string, pending: PendingTotp, issuer: string, label: string): Promise<{ secret: string; uri: string }>;
  /**
   * Checks a first code against the pending secret; if right, turns TOTP on (replacing any
   * earlier factor) and returns the recovery codes, to be shown once. undefined if wrong.
   */
  confirm(tenant: string, userId: string, pending: PendingTotp, code: string): Promise<string[] | undefined>;
  /** A code of the user's factor, in the ±1 step window, whose step was not used before. */
  verify(tenant: string, userId: string, code: string): Promise<boolean>;
  /** One of the user's recovery codes, not used before; it is used up now. */
  useRecoveryCode(tenant: string, userId: string, code: string): Promise<boolean>;
  /** Replaces the recovery codes; undefined when the user has no TOTP factor. */
  replaceRecoveryCodes(tenant: string, userId: string): Promise<string[] | undefined>;
  /** Removes the factor (and its recovery codes); false for an unknown user. */
  disable(tenant: string, userId: string): Promise<boolean>;
}

export interface TotpServiceOptions {
  accounts: AccountService;
  wrapper: KeyWrapper;
  /** Used time steps: short-lived marks (Redis where there is Redis). */
  stepMarks: OneTimeMarks;
  /** Used recovery codes: marks kept as long as codes live (MongoDB where there is MongoDB). */
  recoveryMarks: OneTimeMarks;
  now?: () => number;
}

/** A used step stays marked while it could still be inside someone's window, and a little more. */
const STEP_MARK_SECONDS = (2 * TOTP_WINDOW + 2) * TOTP_PERIOD_SECONDS;
/** Recovery codes have no expiry; their marks must outlive any realistic use of them. */
const RECOVERY_MARK_SECONDS = 10 * 366 * 86_400;

/** Both envelope layers authenticate this, so a sealed secret moved to another user or enrolment fails to open. */
function sealingContext(tenant: string, userId: string, enrolmentId: string): string {
  return `castellan/totp/v1\0${tenant}\0${userId}\0${enrolmentId}`;
}

export function createTotpService(options: TotpServiceOptions): TotpService {
  const { accounts, wrapper, stepMarks, recoveryMarks } = options;
  const now = options.now ?? Date.now;

  async function seal(tenant: string, userId: string, enrolmentId: string, secret: Uint8Array): Promise<EncryptedJwk> {
    // A symmetric key is a JWK of kty "oct" (RFC 7518 §6.4): the signing keys' envelope fits as is.
    return encryptPrivateJwk({ kty: 'oct', k: Buffer.from(secret).toString('base64url') }, wrapper, sealingContext(tenant, userId, enrolmentId));
  }

  async function open(tenant: string, userId: string, enrolmentId: string, sealed: EncryptedJwk): Promise<Uint8Array> {
    const jwk = await decryptPrivateJwk(sealed, wrapper, sealingContext(tenant, userId, enrolmentId));
    if (jwk.kty !== 'oct' || typeof jwk.k !== 'string') throw new TypeError('sealed TOTP secret is not a symmetric key');
    return Uint8Array.from(Buffer.from(jwk.k, 'base64url'));
  }

  /** The matched step, if the code is right and that step was not used before for this enrolment. */
  async function acceptCode(tenant: string, userId: string, enrolmentId: string, secret: Uint8Array, code: string): Promise<boolean> {
    const step = matchTotp(secret, code, now());
    secret.fill(0);
    if (step === undefined) return false;
    return stepMarks.claim(`totp:${tenant}:${userId}:${enrolmentId}:${step}`, STEP_MARK_SECONDS);
  }

  return {
    async begin(tenant, userId) {
      const enrolmentId = randomBytes(12).toString('base64url');
      const secret = newTotpSecret();
      try {
        return { enrolmentId, secret: await seal(tenant, userId, enrolmentId, secret) };
      } finally {
        secret.fill(0);
      }
    },

    async reveal(tenant, userId, pending, issuer, label) {
      const secret = await open(tenant, userId, pending.enrolmentId, pending.secret);
      try {
        return { secret: groupSecret(secretToBase32(secret)), uri: totpUri(secret, issuer, label) };
      } finally {
        secret.fill(0);
      }
    },

    async confirm(tenant, userId, pending, code) {
      const secret = await open(tenant, userId, pending.enrolmentId, pending.secret);
      if (!(await acceptCode(tenant, userId, pending.enrolmentId, secret, code))) return undefined;
      const codes = newRecoveryCodes();
      const recoveryCodeHashes = codes.map((c) => hashRecoveryCode(normaliseRecoveryCode(c) ?? c));
      const stored = await accounts.setTotp(tenant, userId, {
        id: pending.enrolmentId, secret: pending.secret, recoveryCodeHashes, enabledAt: new Date(now()),
      });
      return stored ? codes : undefined;
    },

    async verify(tenant, userId, code) {
      const enrolment = await accounts.totpEnrolment(tenant, userId);
      if (!enrolment) return false;
      return acceptCode(tenant, userId, enrolment.id, await open(tenant, userId, enrolment.id, enrolment.secret), code);
    },

    async useRecoveryCode(tenant, userId, code) {
      const canonical = normaliseRecoveryCode(code);
      const enrolment = canonical === undefined ? undefined : await accounts.totpEnrolment(tenant, userId);
      if (canonical === undefined || !enrolment) return false;
      const hash = hashRecoveryCode(canonical);
      if (!enrolment.recoveryCodeHashes.includes(hash)) return false;
      // The mark decides single use, race-safe on every backend; the list only follows it.
      if (!(await recoveryMarks.claim(`recovery:${tenant}:${userId}:${enrolment.id}:${hash}`, RECOVERY_MARK_SECONDS))) return false;
      await accounts.setRecoveryCodeHashes(tenant, userId, enrolment.id, enrolment.recoveryCodeHashes.filter((h) => h !== hash));
      return true;
    },

    async replaceRecoveryCodes(tenant, userId) {
      const enrolment = await accounts.totpEnrolment(tenant, userId);
      if (!enrolment) return undefined;
      const codes = newRecoveryCodes();
      await accounts.setRecoveryCodeHashes(tenant, userId, enrolment.id, codes.map((c) => hashRecoveryCode(normaliseRecoveryCode(c) ?? c)));
      return codes;
    },

    disable: (tenant, userId) => accounts.setTotp(tenant, userId, undefined),
  };
}
