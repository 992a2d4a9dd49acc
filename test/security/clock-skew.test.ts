import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { postToken } from '../support/oauth.ts';

/*
 * Clock skew of a client's private_key_jwt assertion (RFC 7523 §3 items 4-6, RFC 7519 §4.1.4
 * "some small leeway"): clocks up to 60 s off are tolerated (the provider's clockTolerance,
 * src/tenants/provider-factory.ts), and no more.
 */
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

describe('clock skew of client assertions (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let key: CryptoKey;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_clock_skew');
    const pair = await generateKeyPair('ES256', { extractable: true });
    key = pair.privateKey;
    await castellan.running.storage.modelStores('demo').durable.upsert('Client', 'skewed', {
      client_id: 'skewed', grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
      token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'ES256', use: 'sig' }] },
    });
  });
  afterAll(async () => castellan?.stop());

  /** A client_credentials request authenticated by an assertion with these times. */
  const requestWith = async (claims: { iat: number; exp: number; nbf?: number }) => {
    let jwt = new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer('skewed').setSubject('skewed')
      .setAudience(castellan.issuer).setJti(randomUUID()).setIssuedAt(claims.iat).setExpirationTime(claims.exp);
    if (claims.nbf !== undefined) jwt = jwt.setNotBefore(claims.nbf);
    return postToken(castellan.issuer, {
      grant_type: 'client_credentials', client_id: 'skewed', client_assertion_type: ASSERTION_TYPE, client_assertion: await jwt.sign(key),
    });
  };
  const now = () => Math.floor(Date.now() / 1000);

  it('accepts an assertion from a clock 60 s ahead or behind when its lifetime covers now', async () => {
    for (const skew of [60, -60]) {
      const t = now() + skew;
      const { status, body } = await requestWith({ iat: t, exp: t + 180 });
      expect(status, `${skew} ${JSON.stringify(body)}`).toBe(200);
    }
  });

  it('tolerates nbf and exp off by up to a minute, and refuses them beyond', async () => {
    const ahead = await requestWith({ iat: now() + 50, nbf: now() + 50, exp: now() + 180 });
    expect(ahead.status, JSON.stringify(ahead.body)).toBe(200);
    const justExpired = await requestWith({ iat: now() - 170, exp: now() - 50 });
    expect(justExpired.status, JSON.stringify(justExpired.body)).toBe(200);
    const tooEarly = await requestWith({ iat: now() + 90, nbf: now() + 90, exp: now() + 240 });
    expect(tooEarly.status).toBe(401);
    expect(tooEarly.body.error).toBe('invalid_client');
    const tooLate = await requestWith({ iat: now() - 200, exp: now() - 90 });
    expect(tooLate.status).toBe(401);
  });

  it('refuses an assertion expired well beyond any leeway', async () => {
    const stale = await requestWith({ iat: now() - 900, exp: now() - 600 });
    expect(stale.status).toBe(401);
    expect(stale.body.error).toBe('invalid_client');
  });
});
