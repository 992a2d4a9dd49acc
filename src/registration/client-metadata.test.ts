import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { InvalidClientMetadataError } from '../errors/errors.ts';
import { validateClientMetadata } from './client-metadata.ts';

const RULES = { allowedScopes: ['notes:read'] };
const m2m = (jwks: unknown) => ({
  grant_types: ['client_credentials'], response_types: [], token_endpoint_auth_method: 'private_key_jwt', jwks,
});

describe('client jwks: public signing keys oidc-provider can use', () => {
  it.each(['RS256', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const)('accepts a public %s key', async (alg) => {
    const { publicKey } = await generateKeyPair(alg, { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), use: 'sig', kid: 'k1' };
    expect(validateClientMetadata(m2m({ keys: [jwk] }), RULES).jwks).toEqual({ keys: [jwk] });
  });

  it('refuses unknown key types, missing members and symmetric keys', () => {
    for (const key of [{ kty: 'bogus' }, { kty: 'RSA', e: 'AQAB' }, { kty: 'EC', crv: 'P-256', x: 'abc' }, { kty: 'oct', k: 'c2VjcmV0' }, { kty: 'OKP', crv: 'X25519', x: 'a'.repeat(43) }]) {
      expect(() => validateClientMetadata(m2m({ keys: [key] }), RULES), JSON.stringify(key)).toThrow(InvalidClientMetadataError);
    }
  });

  it('refuses private keys (a client publishes public keys only), without echoing them', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    let message = '';
    try {
      validateClientMetadata(m2m({ keys: [jwk] }), RULES);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/public keys only/);
    expect(message).not.toContain(String(jwk.d));
  });

  it('refuses encryption keys', async () => {
    const { publicKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), use: 'enc' };
    expect(() => validateClientMetadata(m2m({ keys: [jwk] }), RULES)).toThrow(/signing keys/);
  });
});
