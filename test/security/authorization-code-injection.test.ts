import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, codeRedemption, introspect as introspectAt, postToken, runCodeFlow } from '../support/oauth.ts';
import { createOtherTenant } from '../resource-server/support.ts';

/*
 * Authorization code replay and injection (RFC 9700 §4.5, RFC 6749 §4.1.2 and §10.5): a code
 * works once; its replay revokes what the first use issued, also when the replays race the
 * winner; a code of one tenant is worthless at another tenant (mix-up, RFC 9700 §4.4), even
 * where a client of the same id and redirect_uri exists there.
 */
const REDIRECT = 'http://127.0.0.1:53682/callback';

describe('authorization code replay and injection (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let other: { issuer: string };
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_code_injection');
    other = await createOtherTenant(castellan);
    // The same public client id and redirect_uri at tenant other, so only the issuer differs.
    await castellan.running.storage.modelStores('other').durable.upsert('Client', 'demo-agent', {
      client_id: 'demo-agent',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
    });
  });
  afterAll(async () => castellan?.stop());

  const codeFlow = () => runCodeFlow({
    issuer: castellan.issuer,
    clientId: 'demo-agent',
    redirectUri: REDIRECT,
    scope: 'openid offline_access',
    login: 'demo',
    password: castellan.userPassword,
    extra: { prompt: 'consent' },
  });
  const introspect = (token: unknown) => introspectAt(castellan.issuer, basicAuth('demo-service', castellan.clientSecret), token);

  it('lets one of 50 racing redemptions win, and the replays revoke the winner\'s access and refresh tokens', async () => {
    const flow = await codeFlow();
    const form = codeRedemption(flow, 'demo-agent', REDIRECT);
    const attempts = await Promise.all(Array.from({ length: 50 }, () => postToken(castellan.issuer, form)));
    const winners = attempts.filter((a) => a.status === 200);
    expect(winners).toHaveLength(1);
    expect(attempts.filter((a) => a.status === 400 && a.body.error === 'invalid_grant')).toHaveLength(49);
    const won = winners[0]?.body ?? {};
    expect(won.refresh_token).toEqual(expect.any(String));
    // Whichever order the store saw them in, once every answer is in, what the code gave is dead.
    expect(await introspect(won.access_token)).toEqual({ active: false });
    expect(await introspect(won.refresh_token)).toEqual({ active: false });
    const refresh = await postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: 'demo-agent', refresh_token: String(won.refresh_token) });
    expect(refresh.status).toBe(400);
    expect(refresh.body.error).toBe('invalid_grant');
  });

  it('refuses a code of tenant demo at tenant other, for a client of the same id and redirect_uri, without spending it', async () => {
    const flow = await codeFlow();
    const form = codeRedemption(flow, 'demo-agent', REDIRECT);
    const injected = await postToken(other.issuer, form);
    expect(injected.status, JSON.stringify(injected.body)).toBe(400);
    expect(injected.body.error).toBe('invalid_grant');
    expect(injected.body).not.toHaveProperty('access_token');
    // The code is still good where it was issued: the other tenant never saw it.
    const redeemed = await postToken(castellan.issuer, form);
    expect(redeemed.status, JSON.stringify(redeemed.body)).toBe(200);
    expect(await introspect(redeemed.body.access_token)).toMatchObject({ active: true, client_id: 'demo-agent' });
  });
});
