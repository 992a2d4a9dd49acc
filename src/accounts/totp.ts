import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { HOTP, Secret, TOTP } from 'otpauth';

/**
 * RFC 6238 TOTP with the parameters every authenticator app understands (RFC 6238 §4 and
 * the de-facto Key URI format): HMAC-SHA-1, 6 digits, 30-second steps, a 160-bit secret
 * (RFC 4226 §4 R6 recommends 160 bits).
 */
export const TOTP_PERIOD_SECONDS = 30;
export const TOTP_DIGITS = 6;
export const TOTP_SECRET_BYTES = 20;
/** Steps accepted either side of now: RFC 6238 §5.2 suggests at most one for clock drift. */
export const TOTP_WINDOW = 1;

export function newTotpSecret(): Uint8Array {
  return Uint8Array.from(randomBytes(TOTP_SECRET_BYTES));
}

/** The secret as authenticator apps take it typed in: base32 without padding. */
export function secretToBase32(secret: Uint8Array): string {
  return new Secret({ buffer: Uint8Array.from(secret).buffer }).base32;
}

/** The base32 secret in groups of four, easier to read and to type. */
export function groupSecret(base32: string): string {
  return base32.replace(/(.{4})(?=.)/g, '$1 ');
}

function totpOf(secret: Uint8Array, issuer = '', label = 'account'): TOTP {
  return new TOTP({
    issuer,
    label,
    secret: new Secret({ buffer: Uint8Array.from(secret).buffer }),
    algorithm: 'SHA1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
  });
}

/** `otpauth://totp/<issuer>:<label>?secret=…&issuer=…`: what the QR code carries. */
export function totpUri(secret: Uint8Array, issuer: string, label: string): string {
  return totpOf(secret, issuer, label).toString();
}

/** The time step (RFC 6238 T) at `nowMs`. */
export function timeStep(nowMs: number): number {
  return Math.floor(nowMs / 1000 / TOTP_PERIOD_SECONDS);
}

/** The code of one time step; for tests and for nothing else on the server. */
export function totpCodeAt(secret: Uint8Array, step: number): string {
  return HOTP.generate({ secret: new Secret({ buffer: Uint8Array.from(secret).buffer }), counter: step, digits: TOTP_DIGITS, algorithm: 'SHA1' });
}

/** What a person typed, reduced to digits: "123 456" and "123-456" are 123456. */
export function normaliseCode(typed: string): string | undefined {
  const digits = typed.replace(/[\s-]/g, '');
  return new RegExp(`^\\d{${TOTP_DIGITS}}$`).test(digits) ? digits : undefined;
}

/**
 * The time step whose code `typed` is, looking at now and `window` steps either side, or
 * undefined. Every step in the window is computed and compared in constant time, so the
 * answer's timing does not say which one matched. Replay is the caller's business: the
 * returned step must be accepted once only (RFC 6238 §5.2).
 */
export function matchTotp(secret: Uint8Array, typed: string, nowMs: number, window = TOTP_WINDOW): number | undefined {
  const code = normaliseCode(typed);
  if (code === undefined) return undefined;
  const now = timeStep(nowMs);
  let matched: number | undefined;
  for (let delta = -window; delta <= window; delta += 1) {
    const expected = Buffer.from(totpCodeAt(secret, now + delta));
    if (timingSafeEqual(expected, Buffer.from(code)) && matched === undefined) matched = now + delta;
  }
  return matched;
}

/** Crockford-style base32 without I, L, O, U: nothing to misread on paper. */
const RECOVERY_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const RECOVERY_CODE_COUNT = 10;
/** 16 symbols of 5 bits: 80 bits each, beyond guessing, so a fast hash is enough at rest. */
const RECOVERY_CODE_SYMBOLS = 16;

/** Ten fresh recovery codes, as shown to the user once: "XXXX-XXXX-XXXX-XXXX". */
export function newRecoveryCodes(count = RECOVERY_CODE_COUNT): string[] {
  return Array.from({ length: count }, () => {
    const symbols = Array.from({ length: RECOVERY_CODE_SYMBOLS }, () => RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)]).join('');
    return symbols.replace(/(.{4})(?=.)/g, '$1-');
  });
}

/** A typed recovery code in its canonical form: upper case, no separators, look-alikes mapped. */
export function normaliseRecoveryCode(typed: string): string | undefined {
  const canonical = typed.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
  if (canonical.length !== RECOVERY_CODE_SYMBOLS) return undefined;
  for (const c of canonical) if (!RECOVERY_ALPHABET.includes(c)) return undefined;
  return canonical;
}

/**
 * What is stored of a recovery code: SHA-256, base64url. A slow hash buys nothing for 80
 * random bits and would make ten verifications per attempt costly.
 */
export function hashRecoveryCode(canonical: string): string {
  return createHash('sha256').update(`castellan/recovery-code/v1\0${canonical}`).digest('base64url');
}
