import { describe, expect, it } from 'vitest';
import { URI, TOTP } from 'otpauth';
import {
  groupSecret,
  hashRecoveryCode,
  matchTotp,
  newRecoveryCodes,
  newTotpSecret,
  normaliseCode,
  normaliseRecoveryCode,
  secretToBase32,
  timeStep,
  totpCodeAt,
  totpUri,
} from './totp.ts';

// RFC 6238 Appendix B: the SHA-1 test secret "12345678901234567890" (ASCII).
const RFC_SECRET = Uint8Array.from(Buffer.from('12345678901234567890', 'ascii'));

describe('TOTP (RFC 6238)', () => {
  it('computes the RFC 6238 Appendix B SHA-1 values (last 6 of the 8 digits)', () => {
    expect(totpCodeAt(RFC_SECRET, timeStep(59_000))).toBe('287082');
    expect(totpCodeAt(RFC_SECRET, timeStep(1_111_111_109_000))).toBe('081804');
    expect(totpCodeAt(RFC_SECRET, timeStep(1_234_567_890_000))).toBe('005924');
    expect(totpCodeAt(RFC_SECRET, timeStep(20_000_000_000_000))).toBe('353130');
  });

  it('accepts the code of the step before, now and after, and returns which step it was', () => {
    const secret = newTotpSecret();
    const now = 1_700_000_015_000;
    const step = timeStep(now);
    expect(matchTotp(secret, totpCodeAt(secret, step), now)).toBe(step);
    expect(matchTotp(secret, totpCodeAt(secret, step - 1), now)).toBe(step - 1);
    expect(matchTotp(secret, totpCodeAt(secret, step + 1), now)).toBe(step + 1);
  });

  it('refuses codes two steps away, codes of another secret, and malformed input', () => {
    const secret = newTotpSecret();
    const now = 1_700_000_015_000;
    const step = timeStep(now);
    const twoBefore = totpCodeAt(secret, step - 2);
    const twoAfter = totpCodeAt(secret, step + 2);
    const inWindow = [-1, 0, 1].map((d) => totpCodeAt(secret, step + d));
    // A code outside the window that happens to equal one inside it would match; skip that 1-in-10^5 case.
    if (!inWindow.includes(twoBefore)) expect(matchTotp(secret, twoBefore, now)).toBeUndefined();
    if (!inWindow.includes(twoAfter)) expect(matchTotp(secret, twoAfter, now)).toBeUndefined();
    const other = newTotpSecret();
    const otherCode = totpCodeAt(other, step);
    if (!inWindow.includes(otherCode)) expect(matchTotp(secret, otherCode, now)).toBeUndefined();
    for (const bad of ['', '12345', '1234567', 'abcdef', '12345x', '１２３４５６']) expect(matchTotp(secret, bad, now)).toBeUndefined();
  });

  it('reads a typed code with spaces or a dash', () => {
    expect(normaliseCode('123 456')).toBe('123456');
    expect(normaliseCode(' 123-456 ')).toBe('123456');
    expect(normaliseCode('12 34 5')).toBeUndefined();
  });

  it('makes a 160-bit secret and an otpauth URI an authenticator app reads back', () => {
    const secret = newTotpSecret();
    expect(secret).toHaveLength(20);
    const base32 = secretToBase32(secret);
    expect(base32).toMatch(/^[A-Z2-7]{32}$/);
    expect(groupSecret(base32)).toMatch(/^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/);
    const uri = totpUri(secret, 'Acme Corp', 'alice@example.com');
    expect(uri.startsWith('otpauth://totp/Acme%20Corp:alice%40example.com?')).toBe(true);
    const parsed = URI.parse(uri);
    expect(parsed).toBeInstanceOf(TOTP);
    const totp = parsed as TOTP;
    expect({ issuer: totp.issuer, label: totp.label, algorithm: totp.algorithm, digits: totp.digits, period: totp.period, secret: totp.secret.base32 })
      .toEqual({ issuer: 'Acme Corp', label: 'alice@example.com', algorithm: 'SHA1', digits: 6, period: 30, secret: base32 });
    expect(totp.generate({ timestamp: 1_700_000_000_000 })).toBe(totpCodeAt(secret, timeStep(1_700_000_000_000)));
  });
});

describe('recovery codes', () => {
  it('are ten distinct 80-bit codes that read back however they are typed', () => {
    const codes = newRecoveryCodes();
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const code of codes) {
      expect(code).toMatch(/^([0-9A-HJKMNP-TV-Z]{4}-){3}[0-9A-HJKMNP-TV-Z]{4}$/);
      const canonical = normaliseRecoveryCode(code);
      expect(canonical).toBe(code.replaceAll('-', ''));
      expect(normaliseRecoveryCode(` ${code.toLowerCase().replaceAll('-', ' ')} `)).toBe(canonical);
    }
    expect(normaliseRecoveryCode('0O1I-L000-0000-0000')).toBe('0011100000000000');
    expect(normaliseRecoveryCode('short')).toBeUndefined();
    expect(normaliseRecoveryCode('UUUU-UUUU-UUUU-UUUU')).toBeUndefined();
  });

  it('are stored as a hash that is not the code', () => {
    const canonical = normaliseRecoveryCode(newRecoveryCodes(1)[0] ?? '') ?? '';
    const hash = hashRecoveryCode(canonical);
    expect(hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(hash).not.toContain(canonical);
    expect(hashRecoveryCode(canonical)).toBe(hash);
  });
});
