import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, codeRedemption, postToken, runCodeFlow } from '../support/oauth.ts';

/*
 * A refresh token stolen by another client (RFC 6749 §6 "the refresh token was issued to the
 * authenticated client"; RFC 9700 §4.14.2): refused to every other client, confidential or
 * public, and the attempt does not spend it for its owner.
 */
const REDIRECT = 'http://127.0.0.1:53682/callback';

describe('a refresh token presented by another client (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_refresh_theft');
  });
  afterAll(async () => castellan?.stop());

  it('is refused to a confidential client, to another registered public client and to an unknown id, and still works for its owner', async () => {
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access',
      login: 'demo', password: castellan.userPassword, extra: { prompt: 'consent' },
    });
    const issued = await postToken(castellan.issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    const refreshToken = String(issued.body.refresh_token);

    // A confidential client without the refresh_token grant: refused before the token matters.
    const byService = await postToken(castellan.issuer, { grant_type: 'refresh_token', refresh_token: refreshToken }, basicAuth('demo-service', castellan.clientSecret));
    expect(byService.status, JSON.stringify(byService.body)).toBe(400);
    expect(byService.body).not.toHaveProperty('access_token');
    // A registered public client that may refresh its own tokens: refused for this one (client mismatch).
    const registered = await fetch(`${castellan.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'thief', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] }),
    });
    const thief = (await registered.json()) as { client_id?: string };
    expect(registered.status, JSON.stringify(thief)).toBe(201);
    const byThief = await postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: String(thief.client_id), refresh_token: refreshToken });
    expect(byThief.status, JSON.stringify(byThief.body)).toBe(400);
    expect(byThief.body.error).toBe('invalid_grant');
    expect(byThief.body).not.toHaveProperty('access_token');
    const byStranger = await postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: 'no-such-client', refresh_token: refreshToken });
    expect(byStranger.status).toBe(401);
    expect(byStranger.body.error).toBe('invalid_client');

    const byOwner = await postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: 'demo-agent', refresh_token: refreshToken });
    expect(byOwner.status, JSON.stringify(byOwner.body)).toBe(200);
    expect(byOwner.body.access_token).toEqual(expect.any(String));
  });
});
