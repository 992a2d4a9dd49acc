import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, postToken } from '../support/oauth.ts';

/*
 * Clock skew of JWTs that other parties sign and Castellan checks at its grants (RFC 7519
 * §4.1.4, §4.1.5 "some small leeway"; RFC 7523 §3 items 4-6): an ID-JAG at the jwt-bearer
 * grant (draft-ietf-oauth-identity-assertion-authz-grant; the tenant's
 * idJag.accept.clockSkewSeconds, default 60) and a trusted issuer's JWT as an RFC 8693 subject
 * token. Clocks up to 60 s off are tolerated, and no more. (Client assertions:
 * security/clock-skew.test.ts.)
 */
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const TEST_IDP = 'https://idp.skew.example';
const PARTNER = 'https://partner.skew.example';
const CHAT = 'http://localhost:4301/chat';
const API = 'http://localhost:4302/api';
const secret = (id: string) => `${id}-secret-${'x'.repeat(32)}`;

/** Issued-at and expiry of a JWT from a clock `skew` seconds off, valid for `lifetime` seconds from its own now. */
function times(skew: number, lifetime = 120): { iat: number; nbf: number; exp: number } {
  const t = Math.floor(Date.now() / 1000) + skew;
  return { iat: t, nbf: t, exp: t + lifetime };
}

describe('clock skew of ID-JAGs and token-exchange subject tokens (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let rasIssuer = '';
  let idpKey: CryptoKey;
  let partnerKey: CryptoKey;

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_skew_grants');
    rasIssuer = `${castellan.baseUrl}/t/skew-ras`;
    const idp = await generateKeyPair('ES256', { extractable: true });
    const partner = await generateKeyPair('ES256', { extractable: true });
    idpKey = idp.privateKey;
    partnerKey = partner.privateKey;

    // A resource's AS that redeems ID-JAGs of the test IdP (clockSkewSeconds left at its default).
    await castellan.running.storage.tenants.create({
      id: 'skew-ras',
      displayName: 'Skew AS',
      settings: {
        scopes: ['chat:read'],
        resources: [{ uri: CHAT, scopes: ['chat:read'] }],
        idJag: { accept: { enabled: true, trustedIssuers: [{ issuer: TEST_IDP, jwks: { keys: [{ ...(await exportJWK(idp.publicKey)), alg: 'ES256' }] } }] } },
      },
    });
    await castellan.running.storage.modelStores('skew-ras').durable.upsert('Client', 'ras-client', {
      client_id: 'ras-client', client_secret: secret('ras-client'), grant_types: [JWT_BEARER], response_types: [], redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    });

    // demo exchanges a partner's JWT (RFC 8693 token type jwt) for a token for its API.
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        scopes: [...(DEMO_TENANT_SETTINGS.scopes ?? []), 'api:read'],
        resources: [...(DEMO_TENANT_SETTINGS.resources ?? []), { uri: API, scopes: ['api:read'] }],
        tokenExchange: {
          enabled: true,
          rules: [{ client: 'skew-service', audiences: [API] }],
          trustedIssuers: [{ issuer: PARTNER, audience: castellan.issuer, jwks: { keys: [{ ...(await exportJWK(partner.publicKey)), alg: 'ES256' }] } }],
        },
      },
    });
    await castellan.running.storage.modelStores('demo').durable.upsert('Client', 'skew-service', {
      client_id: 'skew-service', client_secret: secret('skew-service'), grant_types: [TOKEN_EXCHANGE], response_types: [], redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    castellan.running.tenants.invalidate('demo');
  });
  afterAll(async () => castellan?.stop());

  /** Redeems an ID-JAG of the test IdP whose clock is `skew` seconds off. */
  async function redeemIdJag(claims: { iat: number; exp: number }) {
    const assertion = await new SignJWT({
      iss: TEST_IDP, sub: 'idp-user', aud: rasIssuer, client_id: 'ras-client', jti: randomUUID(), resource: CHAT, scope: 'chat:read', ...claims,
    }).setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt' }).sign(idpKey);
    return postToken(rasIssuer, { grant_type: JWT_BEARER, assertion }, basicAuth('ras-client', secret('ras-client')));
  }

  /** Exchanges a partner JWT with these times at demo. */
  async function exchangePartnerJwt(claims: { iat: number; exp: number; nbf?: number }) {
    const subject = await new SignJWT({ sub: 'partner-user', ...claims })
      .setProtectedHeader({ alg: 'ES256' }).setIssuer(PARTNER).setAudience(castellan.issuer).setJti(randomUUID()).sign(partnerKey);
    return postToken(castellan.issuer, {
      grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: JWT_TYPE, resource: API, scope: 'api:read',
    }, basicAuth('skew-service', secret('skew-service')));
  }

  it('redeems an ID-JAG from an IdP clock up to 60 s ahead (iat in the future) or behind (just expired)', async () => {
    const ahead = await redeemIdJag(times(50));
    expect(ahead.status, JSON.stringify(ahead.body)).toBe(200);
    const behind = await redeemIdJag(times(-170)); // exp 50 s ago
    expect(behind.status, JSON.stringify(behind.body)).toBe(200);
  });

  it('refuses an ID-JAG from a clock more than 60 s off (one from a clock in step is redeemed)', async () => {
    expect((await redeemIdJag(times(0))).status).toBe(200);
    const tooEarly = await redeemIdJag(times(90));
    expect(tooEarly.status, JSON.stringify(tooEarly.body)).toBe(400);
    expect(tooEarly.body.error).toBe('invalid_grant');
    const tooLate = await redeemIdJag(times(-210)); // exp 90 s ago
    expect(tooLate.status, JSON.stringify(tooLate.body)).toBe(400);
    expect(tooLate.body.error).toBe('invalid_grant');
  });

  // Finding F5 (test/security/README.md, fixed): subject tokens of trusted issuers were verified
  // with no leeway, so a partner clock a second ahead (nbf) or a second past exp was refused.
  it('exchanges a trusted partner JWT from a clock up to 60 s ahead: nbf in the future', async () => {
    const ahead = await exchangePartnerJwt(times(50));
    expect(ahead.status, JSON.stringify(ahead.body)).toBe(200);
  });

  it('exchanges a trusted partner JWT from a clock up to 60 s behind: just expired', async () => {
    const behind = await exchangePartnerJwt(times(-170));
    expect(behind.status, JSON.stringify(behind.body)).toBe(200);
  });

  it('refuses a partner JWT from a clock more than 60 s off (one from a clock in step is exchanged)', async () => {
    const inStep = await exchangePartnerJwt(times(0));
    expect(inStep.status, JSON.stringify(inStep.body)).toBe(200);
    for (const skew of [90, -210]) {
      const refused = await exchangePartnerJwt(times(skew));
      expect(refused.status, `${skew} ${JSON.stringify(refused.body)}`).toBe(400);
      expect(refused.body.error).toBe('invalid_grant');
    }
  });
});
