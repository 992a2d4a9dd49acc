import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import type { JWKS } from 'oidc-provider';
import { describe, expect, it } from 'vitest';
import { activeSigningJwk, NoSigningKeyError, signingKeys } from './signing-key.ts';

async function privateJwk(alg: 'ES256' | 'RS256', kid: string, keyOps?: string[]) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { jwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig', ...(keyOps ? { key_ops: keyOps } : {}) }, publicKey };
}

describe('the tenant\'s active signing key', () => {
  it('is the key of that alg without key_ops, never a verify-only one', async () => {
    const retired = await privateJwk('ES256', 'es-retired', ['verify']);
    const active = await privateJwk('ES256', 'es-active');
    const rsa = await privateJwk('RS256', 'rs-active');
    const jwks = { keys: [retired.jwk, rsa.jwk, active.jwk] } as JWKS;
    expect(activeSigningJwk(jwks, 'ES256').kid).toBe('es-active');
    expect(activeSigningJwk(jwks, 'RS256').kid).toBe('rs-active');
    expect(() => activeSigningJwk(jwks, 'EdDSA')).toThrow(NoSigningKeyError);
    expect(() => activeSigningJwk({ keys: [retired.jwk] } as JWKS, 'ES256')).toThrow(NoSigningKeyError);

    const key = await signingKeys(jwks)('ES256');
    expect(key.kid).toBe('es-active');
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: key.alg }).sign(key.key);
    await expect(jwtVerify(jwt, active.publicKey)).resolves.toBeTruthy();
  });

  it('refuses a public-only JWK', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'p', alg: 'ES256' }] } as JWKS;
    expect(() => activeSigningJwk(jwks, 'ES256')).toThrow(NoSigningKeyError);
  });
});
