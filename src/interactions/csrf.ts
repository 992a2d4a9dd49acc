import { createHmac, timingSafeEqual } from 'node:crypto';
import { CsrfError } from '../errors/errors.ts';

/**
 * CSRF tokens for the interaction forms: an HMAC of the interaction's uid under the tenant's
 * CSRF key, so only a page Castellan rendered for this interaction can post to it. This adds
 * to the SameSite=Lax interaction cookie and the unguessable uid, which already stop a
 * cross-site post on their own.
 */
export function csrfToken(key: Buffer, uid: string): string {
  return createHmac('sha256', key).update(`interaction:${uid}`).digest('base64url');
}

export function checkCsrfToken(key: Buffer, uid: string, presented: string | null): void {
  const expected = Buffer.from(csrfToken(key, uid));
  const given = Buffer.from(presented ?? '');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new CsrfError();
}

export function csrfField(key: Buffer, uid: string): string {
  return `<input type="hidden" name="csrf" value="${csrfToken(key, uid)}">`;
}
