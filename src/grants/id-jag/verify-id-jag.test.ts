import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { createIdJagVerifier, IdJagRejectedError, type IdJagRejection } from './verify-id-jag.ts';

const AS = 'https://as.example/t/resource-as';
const IDP = 'https://idp.example/t/demo';

describe('ID-JAG verification (draft-ietf-oauth-identity-assertion-authz-grant §4.4.1)', () => {
  let key: CryptoKey;
  let verify: ReturnType<typeof createIdJagVerifier>;
  const now = () => Math.floor(Date.now() / 1000);
  const sign = (claims: JWTPayload = {}, header: Record<string, unknown> = {}, signer?: CryptoKey | Uint8Array) =>
    new SignJWT({
      iss: IDP, sub: 'u1', aud: AS, client_id: 'c1', jti: crypto.randomUUID(), iat: now(), exp: now() + 300, ...claims,
    }).setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt', ...header }).sign(signer ?? key);
  const rejection = async (assertion: Promise<string> | string): Promise<IdJagRejection | 'accepted'> => {
    try {
      await verify(await assertion);
      return 'accepted';
    } catch (err) {
      if (err instanceof IdJagRejectedError) return err.code;
      throw err;
    }
  };

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    key = pair.privateKey;
    const jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'ES256' }] };
    verify = createIdJagVerifier({ audience: AS, trustedIssuers: [{ issuer: IDP, jwks }, { issuer: AS, jwks }], clockSkewSeconds: 30, maxLifetimeSeconds: 600 });
  });

  it('returns the typed claims of a good assertion', async () => {
    const claims = await verify(await sign({ resource: ['https://r1', 'https://r2'], scope: 'a b a' }, { typ: 'application/oauth-id-jag+jwt' }));
    expect(claims).toMatchObject({ iss: IDP, sub: 'u1', clientId: 'c1', resources: ['https://r1', 'https://r2'], scopes: ['a', 'b'] });
    expect((await verify(await sign())).resources).toBeUndefined();
    expect((await verify(await sign())).scopes).toEqual([]);
  });

  it('tolerates clock skew on exp and iat, and no more', async () => {
    expect(await rejection(sign({ iat: now() - 320, exp: now() - 20 }))).toBe('accepted');
    expect(await rejection(sign({ iat: now() - 400, exp: now() - 40 }))).toBe('EXPIRED');
    expect(await rejection(sign({ iat: now() + 20, exp: now() + 300 }))).toBe('accepted');
    expect(await rejection(sign({ iat: now() + 60, exp: now() + 300 }))).toBe('NOT_YET_VALID');
    expect(await rejection(sign({ nbf: now() + 60 }))).toBe('NOT_YET_VALID');
  });

  it('bounds the lifetime, so a used jti is remembered long enough', async () => {
    expect(await rejection(sign({ exp: now() + 601 }))).toBe('LIFETIME_TOO_LONG');
    expect(await rejection(sign({ iat: now() - 700, exp: now() + 10 }))).toBe('LIFETIME_TOO_LONG');
  });

  it('refuses the wrong type, audience, issuer, key or algorithm', async () => {
    expect(await rejection(sign({}, { typ: 'JWT' }))).toBe('WRONG_TYPE');
    expect(await rejection(sign({}, { typ: undefined }))).toBe('WRONG_TYPE');
    expect(await rejection(sign({ aud: 'https://other.example' }))).toBe('WRONG_AUDIENCE');
    expect(await rejection(sign({ iss: 'https://stranger.example' }))).toBe('UNTRUSTED_ISSUER');
    expect(await rejection(sign({ iss: 42 } as unknown as JWTPayload))).toBe('UNTRUSTED_ISSUER');
    // This AS must not redeem what it issued itself (draft §7.3), even if listed as trusted.
    expect(await rejection(sign({ iss: AS }))).toBe('UNTRUSTED_ISSUER');
    expect(await rejection(sign({}, {}, (await generateKeyPair('ES256')).privateKey))).toBe('BAD_SIGNATURE');
    expect(await rejection(sign({}, { alg: 'HS256' }, new Uint8Array(32)))).toBe('BAD_SIGNATURE');
    expect(await rejection('a.b.c')).toBe('MALFORMED');
  });

  it('requires sub, client_id and jti, and well-formed resource and scope', async () => {
    for (const claim of ['sub', 'client_id', 'jti', 'iat', 'exp']) {
      expect(await rejection(sign({ [claim]: undefined })), claim).toBe('MISSING_CLAIM');
    }
    expect(await rejection(sign({ client_id: '' }))).toBe('MISSING_CLAIM');
    expect(await rejection(sign({ resource: [] }))).toBe('MALFORMED');
    expect(await rejection(sign({ resource: 7 }))).toBe('MALFORMED');
    expect(await rejection(sign({ scope: ['a'] }))).toBe('MALFORMED');
  });
});
