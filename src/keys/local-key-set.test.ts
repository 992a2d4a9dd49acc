import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { localKeySet } from './local-key-set.ts';

describe('localKeySet', () => {
  it('makes one key set per key set object, and it verifies tokens signed by the set\'s keys', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    const same = localKeySet(jwks);
    expect(localKeySet(jwks)).toBe(same);
    // A replaced set (new keys) is a new object: it gets its own key set.
    expect(localKeySet({ keys: [...jwks.keys] })).not.toBe(same);
    const token = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
    for (let i = 0; i < 2; i++) expect((await jwtVerify(token, localKeySet(jwks))).payload.sub).toBe('u');
  });
});
