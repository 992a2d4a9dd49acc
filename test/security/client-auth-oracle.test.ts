import * as crypto from 'node:crypto';
import { randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashClientSecret } from '../../src/registration/client-secrets.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth } from '../support/oauth.ts';

// Pass-through spy: every comparison really runs, and the test sees what was compared.
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>();
  return { ...original, timingSafeEqual: vi.fn(original.timingSafeEqual) };
});

/*
 * No oracle in client authentication (RFC 9700 §2.5; RFC 6749 §10.1, §5.2): an attacker who
 * sends a client_id with a guessed credential must not learn whether the client exists, from
 * the answer or from the work the server does.
 *
 * (a) Content: an unknown client_id and a known client with a wrong credential get the same
 *     status, body and headers (all but Date and X-Request-Id) at /token, introspection and
 *     revocation, for client_secret_basic, client_secret_post and private_key_jwt (unknown kid,
 *     bad signature).
 * (b) Work (not timed: timing belongs in benchmarks): a presented secret is compared exactly
 *     once, as a SHA-256 digest against a 32-byte digest in constant time, whether the client
 *     exists or not (src/registration/client-secrets.ts UNKNOWN_CLIENT_SECRET). Client finds
 *     cost the same for known and unknown ids: misses are cached like hits
 *     (storage/client-cache.test.ts › 'serves repeated finds, hits and misses, from memory, ...').
 */
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ENDPOINTS = ['/token', '/token/introspection', '/token/revocation'] as const;
/** Headers that differ between any two responses by design. */
const VOLATILE = new Set(['date', 'x-request-id']);

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

function sha256(value: string): Buffer {
  return crypto.createHash('sha256').update(value, 'utf8').digest();
}

describe('client authentication oracles (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  const postSecret = randomBytes(64).toString('base64url');
  let key: CryptoKey;
  let otherKey: CryptoKey;

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_client_auth_oracle');
    const pair = await generateKeyPair('ES256', { extractable: true });
    key = pair.privateKey;
    otherKey = (await generateKeyPair('ES256')).privateKey;
    const clients = castellan.running.storage.modelStores('demo').durable;
    // demo-service (client_secret_basic) is seeded with a hashed secret; add a client_secret_post
    // one, stored hashed as a registration stores it, and a private_key_jwt one.
    await clients.upsert('Client', 'post-service', {
      client_id: 'post-service', client_secret: hashClientSecret(postSecret), grant_types: ['client_credentials'],
      response_types: [], redirect_uris: [], token_endpoint_auth_method: 'client_secret_post',
    });
    await clients.upsert('Client', 'jwt-service', {
      client_id: 'jwt-service', grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
      token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'registered', alg: 'ES256', use: 'sig' }] },
    });
    castellan.running.tenants.invalidate('demo');
  });
  afterAll(async () => castellan?.stop());

  async function call(endpoint: string, form: Record<string, string>, authorization?: string): Promise<Answer> {
    const response = await fetch(`${castellan.issuer}${endpoint}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
      body: new URLSearchParams({ grant_type: 'client_credentials', token: 'some-token', ...form }).toString(),
    });
    const headers = Object.fromEntries([...response.headers].filter(([name]) => !VOLATILE.has(name)));
    return { status: response.status, body: await response.text(), headers };
  }

  const assertion = (clientId: string, signer: CryptoKey, kid: string) =>
    new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setIssuer(clientId).setSubject(clientId)
      .setAudience(castellan.issuer).setJti(randomUUID()).setIssuedAt().setExpirationTime('2m').sign(signer);

  it.each(ENDPOINTS)('%s answers an unknown client and a wrong credential byte for byte alike', async (endpoint) => {
    const unknown = `nobody-${randomUUID()}`;
    const guess = randomBytes(64).toString('base64url');
    const cases: Array<[string, () => Promise<Answer>, () => Promise<Answer>]> = [
      ['client_secret_basic',
        () => call(endpoint, {}, basicAuth(unknown, guess)),
        () => call(endpoint, {}, basicAuth('demo-service', guess))],
      ['client_secret_post',
        () => call(endpoint, { client_id: unknown, client_secret: guess }),
        () => call(endpoint, { client_id: 'post-service', client_secret: guess })],
      ['private_key_jwt, unknown kid',
        async () => call(endpoint, { client_id: unknown, client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(unknown, key, 'registered') }),
        async () => call(endpoint, { client_id: 'jwt-service', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion('jwt-service', key, 'unknown-kid') })],
      ['private_key_jwt, bad signature',
        async () => call(endpoint, { client_id: unknown, client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(unknown, otherKey, 'registered') }),
        async () => call(endpoint, { client_id: 'jwt-service', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion('jwt-service', otherKey, 'registered') })],
    ];
    for (const [method, unknownClient, wrongCredential] of cases) {
      // Twice each: the first find of an id goes to the store, later ones to the client cache.
      const answers = [await unknownClient(), await wrongCredential(), await unknownClient(), await wrongCredential()];
      const [first] = answers;
      expect(first?.status, `${method}: ${first?.body}`).toBe(401);
      expect(JSON.parse(String(first?.body))).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
      for (const answer of answers) expect(answer, method).toEqual(first);
    }
    // And the right credentials still work here, so the wrong ones above were the only difference.
    const right = await call(endpoint, {}, basicAuth('demo-service', castellan.clientSecret));
    expect(right.status, right.body).toBe(200);
  });

  it('compares a presented secret once, digest against digest, whether or not the client exists', async () => {
    const compare = vi.mocked(crypto.timingSafeEqual);
    const stored = (await castellan.running.storage.modelStores('demo').durable.find('Client', 'demo-service'))?.['client_secret'];
    expect(String(stored)).toMatch(/^\$sha256\$/);
    const storedDigest = Buffer.from(String(stored).slice('$sha256$'.length), 'base64url');

    const comparisonsOf = async (authorization: string | undefined, form: Record<string, string>, guess: string) => {
      compare.mockClear();
      const answer = await call('/token', form, authorization);
      expect(answer.status, answer.body).toBe(401);
      const presented = sha256(guess);
      return compare.mock.calls
        .map(([expected, actual]) => [Buffer.from(expected as Uint8Array), Buffer.from(actual as Uint8Array)] as const)
        .filter(([, actual]) => actual.equals(presented));
    };

    for (const round of [1, 2]) {
      const guess = randomBytes(64).toString('base64url');
      const known = await comparisonsOf(basicAuth('demo-service', guess), {}, guess);
      expect(known, `round ${round}`).toHaveLength(1);
      expect(known[0]?.[0].equals(storedDigest)).toBe(true);

      for (const [name, authorization, form] of [
        ['basic', basicAuth(`nobody-${randomUUID()}`, guess), {}],
        ['post', undefined, { client_id: `nobody-${randomUUID()}`, client_secret: guess }],
      ] as const) {
        const unknown = await comparisonsOf(authorization, form, guess);
        expect(unknown, `${name}, round ${round}`).toHaveLength(1);
        const [expected] = unknown[0] ?? [];
        // A digest of the same size as a stored one, and not any real client's.
        expect(expected?.length).toBe(storedDigest.length);
        expect(expected?.equals(storedDigest)).toBe(false);
      }
    }
  });
});
