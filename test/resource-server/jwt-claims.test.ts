import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJwtVerifier, delegationChain, InvalidTokenError, type TokenVerifier } from '../../src/resource-server/index.ts';
import { startJwksServer } from './support.ts';

/*
 * Claims Castellan does not issue yet (act from token exchange, nbf, cnf) or must never issue
 * (a token missing RFC 9068 claims), signed by a key of this test and served from a loopback
 * JWKS, so each check is seen on its own.
 */
const ISSUER = 'https://as.example/t/demo';
const RESOURCE = 'http://localhost:3001/mcp';

describe('JWT verifier claim checks (RFC 9068, RFC 8693 act)', () => {
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  let privateKey: CryptoKey;
  let verifier: TokenVerifier;
  const now = Math.floor(Date.now() / 1000);
  const base = (): JWTPayload => ({
    iss: ISSUER, aud: RESOURCE, sub: 'user-1', client_id: 'agent', iat: now, exp: now + 300, jti: crypto.randomUUID(), scope: 'notes:read',
  });
  const sign = (payload: JWTPayload, typ = 'at+jwt') =>
    new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ, kid: 'k1' }).sign(privateKey);
  const code = async (token: string) => {
    try {
      await verifier.verifyAccessToken(token);
    } catch (error) {
      if (error instanceof InvalidTokenError) return error.code;
      throw error;
    }
    return 'accepted';
  };

  beforeAll(async () => {
    jwks = await startJwksServer();
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    jwks.keys.push({ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' });
    verifier = createJwtVerifier({ issuer: ISSUER, audience: RESOURCE, jwksUri: jwks.url });
  });
  afterAll(async () => jwks?.close());

  it('accepts typ at+jwt and application/at+jwt, in any case, and refuses JWT or none', async () => {
    expect(await code(await sign(base()))).toBe('accepted');
    expect(await code(await sign(base(), 'application/at+jwt'))).toBe('accepted');
    expect(await code(await sign(base(), 'AT+JWT'))).toBe('accepted');
    expect(await code(await sign(base(), 'JWT'))).toBe('ERR_TOKEN_TYPE');
    const untyped = await new SignJWT(base()).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
    expect(await code(untyped)).toBe('ERR_TOKEN_TYPE');
  });

  it('accepts an audience array that contains this resource, refuses one that does not', async () => {
    expect(await code(await sign({ ...base(), aud: ['https://other.example/api', RESOURCE] }))).toBe('accepted');
    expect(await code(await sign({ ...base(), aud: ['https://other.example/api'] }))).toBe('ERR_TOKEN_AUDIENCE');
    // The canonical URI is compared exactly: a trailing slash is another resource.
    expect(await code(await sign({ ...base(), aud: `${RESOURCE}/` }))).toBe('ERR_TOKEN_AUDIENCE');
  });

  it('refuses a token before its nbf (beyond the tolerance) and after its exp', async () => {
    expect(await code(await sign({ ...base(), nbf: now + 10 }))).toBe('accepted');
    expect(await code(await sign({ ...base(), nbf: now + 120 }))).toBe('ERR_TOKEN_NOT_YET_VALID');
    expect(await code(await sign({ ...base(), exp: now - 120 }))).toBe('ERR_TOKEN_EXPIRED');
  });

  it('requires every RFC 9068 claim', async () => {
    for (const claim of ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
      const payload = base();
      delete payload[claim];
      expect(await code(await sign(payload)), claim).toMatch(/^ERR_TOKEN_(CLAIMS|ISSUER|AUDIENCE)$/);
    }
    expect(await code(await sign({ ...base(), scope: ['notes:read'] }))).toBe('ERR_TOKEN_CLAIMS');
    expect(await code(await sign({ ...base(), client_id: 42 }))).toBe('ERR_TOKEN_CLAIMS');
  });

  it('refuses a sender-constrained token presented as a bearer token', async () => {
    expect(await code(await sign({ ...base(), cnf: { jkt: 'abc' } }))).toBe('ERR_TOKEN_UNSUPPORTED');
  });

  it('refuses a token signed by a key outside the issuer JWKS', async () => {
    const stranger = await generateKeyPair('ES256');
    const token = await new SignJWT(base()).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' }).sign(stranger.privateKey);
    expect(await code(token)).toBe('ERR_TOKEN_SIGNATURE');
  });

  it('exposes the RFC 8693 act chain in AuthInfo.extra, current actor first', async () => {
    const act = { sub: 'gateway', client_id: 'gateway-client', act: { sub: 'agent-7' } };
    const info = await verifier.verifyAccessToken(await sign({ ...base(), act }));
    expect(info.extra?.act).toEqual(act);
    expect(delegationChain(info).map((a) => a.sub)).toEqual(['gateway', 'agent-7']);
    expect(delegationChain(await verifier.verifyAccessToken(await sign(base())))).toEqual([]);
  });

  it('refuses a malformed or absurdly deep act chain', async () => {
    expect(await code(await sign({ ...base(), act: 'gateway' }))).toBe('ERR_TOKEN_CLAIMS');
    expect(await code(await sign({ ...base(), act: { client_id: 'no-sub' } }))).toBe('ERR_TOKEN_CLAIMS');
    let deep: Record<string, unknown> = { sub: 'a0' };
    for (let i = 1; i < 12; i += 1) deep = { sub: `a${i}`, act: deep };
    expect(await code(await sign({ ...base(), act: deep }))).toBe('ERR_TOKEN_CLAIMS');
  });
});
