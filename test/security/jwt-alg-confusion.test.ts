import { createHmac, createPublicKey, type JsonWebKey as NodeJwk } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJwtVerifier, InvalidTokenError, type TokenVerifier } from '../../src/resource-server/index.ts';
import { countingFetch, startJwksServer } from '../resource-server/support.ts';

/*
 * JWT algorithm confusion and key injection at the resource-server kit (RFC 8725 §2.1, §3.1,
 * §3.2; RFC 7515 §4.1.2-§4.1.5; RFC 9068 §4). The verifier trusts only the issuer's JWKS and
 * its own algorithm allow-list: the token's header may name an algorithm, a key or a place to
 * fetch keys from, and none of that may widen what is accepted.
 */
const ISSUER = 'https://as.example/t/demo';
const RESOURCE = 'http://localhost:3001/mcp';
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('JWT algorithm confusion and header key injection (resource-server kit)', () => {
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  let attackerJwks: Awaited<ReturnType<typeof startJwksServer>>;
  let rsaPrivate: CryptoKey;
  let rsaPublicJwk: JWK;
  let verifier: TokenVerifier;
  let fetches: ReturnType<typeof countingFetch>;
  let attacker: { privateKey: CryptoKey; publicJwk: JWK };
  const now = Math.floor(Date.now() / 1000);
  const claims = (): JWTPayload => ({
    iss: ISSUER, aud: RESOURCE, sub: 'user-1', client_id: 'agent', iat: now, exp: now + 300, jti: crypto.randomUUID(), scope: 'notes:read',
  });
  const outcome = async (token: string): Promise<string> => {
    try {
      await verifier.verifyAccessToken(token);
    } catch (error) {
      if (error instanceof InvalidTokenError) return error.code;
      throw error;
    }
    return 'accepted';
  };
  /** Signs header.payload with HMAC-SHA256 under the given secret bytes. */
  const hs256 = (header: Record<string, unknown>, secret: Buffer | string): string => {
    const input = `${b64(header)}.${b64(claims())}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  };

  beforeAll(async () => {
    jwks = await startJwksServer();
    attackerJwks = await startJwksServer();
    const rsa = await generateKeyPair('RS256', { extractable: true });
    rsaPrivate = rsa.privateKey;
    rsaPublicJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'rs1', alg: 'RS256', use: 'sig' };
    jwks.keys.push(rsaPublicJwk);
    const evil = await generateKeyPair('RS256', { extractable: true });
    attacker = { privateKey: evil.privateKey, publicJwk: { ...(await exportJWK(evil.publicKey)), kid: 'evil', alg: 'RS256', use: 'sig' } };
    attackerJwks.keys.push(attacker.publicJwk);
    fetches = countingFetch();
    verifier = createJwtVerifier({ issuer: ISSUER, audience: RESOURCE, jwksUri: jwks.url, fetch: fetches.fetch });
  });
  afterAll(async () => {
    await jwks?.close();
    await attackerJwks?.close();
  });

  it('accepts a token signed by the issuer key (the baseline the refusals are measured against)', async () => {
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'rs1' }).sign(rsaPrivate);
    expect(await outcome(token)).toBe('accepted');
  });

  it('refuses alg none, in any spelling, with or without a signature', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const unsigned = `${b64({ alg, typ: 'at+jwt', kid: 'rs1' })}.${b64(claims())}.`;
      expect(await outcome(unsigned), alg).not.toBe('accepted');
      expect(await outcome(`${unsigned}c2ln`), alg).not.toBe('accepted');
    }
  });

  it('refuses HS256 signed with the issuer\'s public key as the HMAC secret (PEM, DER, JWK and modulus)', async () => {
    const publicKey = createPublicKey({ key: { ...rsaPublicJwk } as NodeJwk, format: 'jwk' });
    const secrets: Array<[string, Buffer | string]> = [
      ['SPKI PEM', publicKey.export({ type: 'spki', format: 'pem' })],
      ['PKCS#1 PEM', publicKey.export({ type: 'pkcs1', format: 'pem' })],
      ['SPKI DER', publicKey.export({ type: 'spki', format: 'der' })],
      ['JWK JSON', JSON.stringify(rsaPublicJwk)],
      ['modulus', Buffer.from(String(rsaPublicJwk.n), 'base64url')],
    ];
    for (const [name, secret] of secrets) {
      for (const header of [{ alg: 'HS256', typ: 'at+jwt', kid: 'rs1' }, { alg: 'HS256', typ: 'at+jwt' }]) {
        expect(await outcome(hs256(header, secret)), `${name} ${JSON.stringify(header)}`).toBe('ERR_TOKEN_ALGORITHM');
      }
    }
  });

  it('refuses a token whose kid is unknown to the issuer JWKS, or missing, when another key signed it', async () => {
    for (const kid of ['unknown', 'evil', '../rs1', '', undefined]) {
      const header = { alg: 'RS256', typ: 'at+jwt', ...(kid === undefined ? {} : { kid }) };
      const token = await new SignJWT(claims()).setProtectedHeader(header).sign(attacker.privateKey);
      expect(['ERR_TOKEN_UNKNOWN_KEY', 'ERR_TOKEN_SIGNATURE'], String(kid)).toContain(await outcome(token));
    }
  });

  it('ignores keys the token brings itself (jwk header) and places it names (jku, x5u): never fetched, never trusted', async () => {
    const before = fetches.calls(attackerJwks.url);
    const headers = [
      { jwk: attacker.publicJwk },
      { jwk: attacker.publicJwk, kid: 'evil' },
      { jwk: { ...attacker.publicJwk, kid: 'rs1' }, kid: 'rs1' },
      { jku: attackerJwks.url, kid: 'evil' },
      { jku: attackerJwks.url, kid: 'rs1' },
      { x5u: attackerJwks.url, kid: 'evil' },
      { x5c: ['MIIB'], kid: 'rs1' },
    ];
    for (const extra of headers) {
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', ...extra }).sign(attacker.privateKey);
      expect(['ERR_TOKEN_UNKNOWN_KEY', 'ERR_TOKEN_SIGNATURE', 'ERR_TOKEN_MALFORMED'], JSON.stringify(Object.keys(extra)))
        .toContain(await outcome(token));
    }
    expect(fetches.calls(attackerJwks.url)).toBe(before);
    expect(fetches.calls(attackerJwks.url)).toBe(0);
  });

  it('refuses a valid issuer signature moved under another alg name', async () => {
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'rs1' }).sign(rsaPrivate);
    const [, payload, signature] = token.split('.');
    for (const alg of ['PS256', 'RS384', 'RS512', 'ES256', 'HS256']) {
      const forged = `${b64({ alg, typ: 'at+jwt', kid: 'rs1' })}.${payload}.${signature}`;
      expect(await outcome(forged), alg).not.toBe('accepted');
    }
  });
});
