import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { hashClientSecret } from '../../src/registration/client-secrets.ts';
import { BASIC_CREDENTIAL_CASES } from '../support/basic-credential-cases.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { codeRedemption, postToken, runCodeFlow } from '../support/oauth.ts';

/*
 * client_secret_basic as oidc-provider itself decodes it, and Castellan's layers in front of
 * it agreeing: the table of test/support/basic-credential-cases.ts (which the decoder of
 * src/http/basic-credentials.ts is unit-tested against) is checked here against the real
 * provider, then the endpoint rate limit and the refresh retry grace are shown to name the
 * same client as the provider, or none where it names none.
 */

const REDIRECT = 'http://127.0.0.1:53601/callback';
const PER_CLIENT = 2;

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

describe('HTTP Basic client credentials: Castellan and oidc-provider agree (memory)', () => {
  let castellan: TestCastellan;

  beforeAll(async () => {
    castellan = await startTestCastellan('memory', 'basic_credentials');
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        // The longest grace there is: the retries below must land inside it on a slow machine.
        ttl: { refreshRetryGrace: 60 },
        rateLimits: { token: { perIp: 10_000, perClient: PER_CLIENT, windowSeconds: 3600 } },
      },
    });
    castellan.running.tenants.invalidate('demo');
  });
  afterAll(async () => castellan?.stop());

  async function addService(clientId: string, secret: string): Promise<void> {
    await castellan.running.storage.modelStores('demo').durable.upsert('Client', clientId, {
      client_id: clientId,
      client_secret: hashClientSecret(secret),
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    });
  }

  async function token(form: Record<string, string>, authorization?: string): Promise<Answer> {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (authorization !== undefined) headers.authorization = authorization;
    const response = await fetch(`${castellan.issuer}/token`, { method: 'POST', headers, body: new URLSearchParams(form).toString() });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  describe('oidc-provider concludes from each header what the decoder does', () => {
    const onTheWire = BASIC_CREDENTIAL_CASES.filter((c) => c.survivesTheWire !== false);

    beforeAll(async () => {
      // Every client the table expects, with the secret it expects: the provider answers 200
      // only if it decoded that very client_id (to find the client) and that very secret (to
      // match its digest); each secret in the table belongs to one client_id only.
      const secrets = new Map<string, string>();
      for (const { expected } of onTheWire) {
        if (!expected) continue;
        expect(secrets.get(expected.clientId) ?? expected.clientSecret).toBe(expected.clientSecret);
        secrets.set(expected.clientId, expected.clientSecret);
      }
      for (const [clientId, secret] of secrets) await addService(clientId, secret);
    });

    it.each(onTheWire.map((c) => [c.name, c] as const))('%s', async (_name, { header, expected }) => {
      const answer = await token({ grant_type: 'client_credentials' }, header);
      if (expected) {
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        expect(answer.body.access_token).toEqual(expect.any(String));
      } else {
        // invalid_request: the header itself is refused, before any client is looked up
        // (an unknown client would be 401 invalid_client).
        expect(answer.status, JSON.stringify(answer.body)).toBe(400);
        expect(answer.body.error).toBe('invalid_request');
      }
    });
  });

  it('the rate limit charges the client the provider authenticated, however its id is percent-encoded, and no client for a header the provider refuses', async () => {
    const clientId = 'rl:a+b c';
    const secret = 'rl-secret';
    await addService(clientId, secret);
    const encodings = [
      `${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`, // rl%3Aa%2Bb%20c
      'rl%3Aa%2Bb+c:rl-secret',
      'r%6C%3a%61%2bb+c:rl%2Dsecret',
    ];
    const headers = encodings.map((text) => `Basic ${Buffer.from(text).toString('base64')}`);
    const m2m = (authorization: string) => token({ grant_type: 'client_credentials' }, authorization);
    for (const header of headers.slice(0, PER_CLIENT)) {
      const answer = await m2m(header);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    }
    // A third spelling of the same client: the same bucket, now empty.
    const limited = await m2m(headers[PER_CLIENT] ?? '');
    expect(limited.status).toBe(429);
    expect(limited.body.error_description).toMatch(/from this client/);
    // Headers the provider refuses name no client, so no client's bucket answers for them:
    // the provider's own 400 comes back, not the client's 429.
    for (const refused of [`Basic  ${Buffer.from(encodings[0] ?? '').toString('base64')}`, `Basic ${Buffer.from(encodings[0] ?? '').toString('base64url')}=`]) {
      const answer = await m2m(refused);
      expect(answer.status, refused).toBe(400);
      expect(answer.body.error).toBe('invalid_request');
    }
  });

  describe('the refresh retry grace', () => {
    let original: Record<string, unknown>;
    let rotated: Record<string, unknown>;

    beforeAll(async () => {
      const flow = await runCodeFlow({
        issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access',
        login: 'demo', password: castellan.userPassword, extra: { prompt: 'consent' },
      });
      const first = await postToken(castellan.issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      original = first.body;
      const second = await postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: 'demo-agent', refresh_token: String(original.refresh_token) });
      expect(second.status, JSON.stringify(second.body)).toBe(200);
      rotated = second.body;
    });

    const retry = (form: Record<string, string>, authorization?: string) =>
      token({ grant_type: 'refresh_token', refresh_token: String(original.refresh_token), ...form }, authorization);

    // demo-agent is public ("none"): oidc-provider authenticates it only without any credential.
    it.each([
      ['Basic naming it by a percent-encoded client_id', {}, `Basic ${Buffer.from('demo%2Dagent:anything').toString('base64')}`, 401, 'invalid_client'],
      ['Basic naming it, client_id in the form as well', { client_id: 'demo-agent' }, `Basic ${Buffer.from('demo-agent:anything').toString('base64')}`, 401, 'invalid_client'],
      ['Basic naming another client than the form', { client_id: 'demo-agent' }, `Basic ${Buffer.from('demo-service:anything').toString('base64')}`, 400, 'invalid_request'],
      ['a malformed Authorization header', { client_id: 'demo-agent' }, 'Bearer x', 400, 'invalid_request'],
      ['a client_secret in the form', { client_id: 'demo-agent', client_secret: 'anything' }, undefined, 401, 'invalid_client'],
      ['client_id given twice', {}, undefined, 400, 'invalid_request'],
    ] as const)('leaves a retry with %s to the provider, which refuses it', async (name, form, authorization, status, error) => {
      const answer = name === 'client_id given twice'
        ? await fetch(`${castellan.issuer}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(String(original.refresh_token))}&client_id=demo-agent&client_id=demo-agent`,
        }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }))
        : await retry(form, authorization);
      expect(answer.status, JSON.stringify(answer.body)).toBe(status);
      expect(answer.body.error).toBe(error);
      expect(answer.body.access_token).toBeUndefined();
    });

    it('still answers the plain retry with the pair it kept: the refused ones spent nothing', async () => {
      const answer = await retry({ client_id: 'demo-agent' });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.body.refresh_token).toBe(rotated.refresh_token);
      expect(answer.body.access_token).toBe(rotated.access_token);
    });
  });
});
