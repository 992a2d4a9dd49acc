import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { codeRedemption, postToken, runCodeFlow } from '../support/oauth.ts';

const REDIRECT = 'http://127.0.0.1:53600/callback';

describe('refresh-token rotation with a retry grace (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'refresh_retry');
    await castellan.running.storage.tenants.update('demo', { settings: { ...DEMO_TENANT_SETTINGS, ttl: { refreshRetryGrace: 2 } } });
    castellan.running.tenants.invalidate('demo');
  });
  afterAll(async () => castellan?.stop());

  async function firstPair(): Promise<Record<string, unknown>> {
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access',
      login: 'demo', password: castellan.userPassword, extra: { prompt: 'consent' },
    });
    const { status, body } = await postToken(castellan.issuer, codeRedemption(flow, 'demo-agent', REDIRECT));
    expect(status, JSON.stringify(body)).toBe(200);
    return body;
  }
  const refresh = (token: unknown, clientId = 'demo-agent') =>
    postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: clientId, refresh_token: String(token) });

  it('gives a retry within the grace the same new pair, and the session goes on', async () => {
    const first = await firstPair();
    const rotated = await refresh(first.refresh_token);
    expect(rotated.status).toBe(200);
    const retried = await refresh(first.refresh_token);
    expect(retried.status).toBe(200);
    expect(retried.body.refresh_token).toBe(rotated.body.refresh_token);
    expect(retried.body.access_token).toBe(rotated.body.access_token);
    // The pair still works: nothing was revoked.
    expect((await refresh(rotated.body.refresh_token)).status).toBe(200);
  });

  it('does not answer another client with the kept pair', async () => {
    const first = await firstPair();
    await refresh(first.refresh_token);
    const other = await refresh(first.refresh_token, 'someone-else');
    expect(other.status).not.toBe(200);
  });

  it('treats a replay after the grace as reuse and revokes the grant', async () => {
    const first = await firstPair();
    const rotated = await refresh(first.refresh_token);
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    const late = await refresh(first.refresh_token);
    expect(late.status).toBe(400);
    expect(late.body.error).toBe('invalid_grant');
    expect((await refresh(rotated.body.refresh_token)).body.error).toBe('invalid_grant');
  });
});
