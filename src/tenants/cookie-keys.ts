import { hkdfSync } from 'node:crypto';

/**
 * Cookie signing keys of one tenant, derived (HKDF-SHA256) from one configured secret, so
 * every node signs and accepts the same cookies without another secret to distribute, and
 * one tenant's cookies never verify under another's keys.
 */
export function deriveCookieKeys(secret: string, tenantId: string): string[] {
  const key = hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from('castellan cookie keys'), Buffer.from(tenantId), 32);
  return [Buffer.from(key).toString('base64url')];
}
