import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { postToken, runCodeFlow } from '../support/oauth.ts';

const REDIRECT = 'http://127.0.0.1:53682/callback';

/*
 * Audit events of oidc-provider's own endpoints (src/observability/provider-audit.ts):
 * consent, grant revocation, client registration, update and deletion — each recorded once,
 * none carrying a token, code or secret.
 */
describe('audit events of consent, revocation and registration (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'provider_audit');
  });
  afterAll(async () => castellan?.stop());

  const eventsSince = (start: number, type: string) => castellan.audit.slice(start).filter((e) => e.type === type);

  it('records consent given and the revocation of the grant behind a refresh token', async () => {
    const start = castellan.audit.length;
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access',
      login: 'demo', password: castellan.userPassword, extra: { prompt: 'consent' },
    });
    const tokens = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', client_id: 'demo-agent', code: flow.code, redirect_uri: REDIRECT, code_verifier: flow.verifier,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const [consent] = eventsSince(start, 'consent_given');
    expect(consent).toMatchObject({ tenant: 'demo', outcome: 'success', client: 'demo-agent', grantId: expect.any(String) });
    expect(consent?.subject).toEqual(expect.any(String));

    const revoked = await fetch(`${castellan.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'demo-agent', token: String(tokens.body.refresh_token), token_type_hint: 'refresh_token' }).toString(),
    });
    expect(revoked.status).toBe(200);
    expect(eventsSince(start, 'grant_revoked')).toEqual([
      expect.objectContaining({ tenant: 'demo', grantId: consent?.grantId, client: 'demo-agent' }),
    ]);
    const all = JSON.stringify(castellan.audit.slice(start));
    for (const secret of [flow.code, flow.verifier, tokens.body.access_token, tokens.body.refresh_token, tokens.body.id_token, castellan.userPassword]) {
      expect(all).not.toContain(String(secret));
    }
  });

  it('records a client registered, updated and deleted (RFC 7591/7592), never its secret', async () => {
    const start = castellan.audit.length;
    const metadata = { client_name: 'Audited', redirect_uris: ['https://audited.example/cb'], token_endpoint_auth_method: 'client_secret_basic' };
    const created = await fetch(`${castellan.issuer}/reg`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata),
    });
    expect(created.status).toBe(201);
    const client = (await created.json()) as { client_id: string; client_secret: string; registration_access_token: string; registration_client_uri: string };
    const auth = { authorization: `Bearer ${client.registration_access_token}` };
    const updated = await fetch(client.registration_client_uri, {
      method: 'PUT', headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ ...metadata, client_id: client.client_id, client_secret: client.client_secret, client_name: 'Audited again' }),
    });
    expect(updated.status, await updated.clone().text()).toBe(200);
    const rotatedToken = ((await updated.json()) as { registration_access_token?: string }).registration_access_token ?? client.registration_access_token;
    const deleted = await fetch(client.registration_client_uri, { method: 'DELETE', headers: { authorization: `Bearer ${rotatedToken}` } });
    expect(deleted.status).toBe(204);

    for (const type of ['client_registered', 'client_updated', 'client_deleted']) {
      expect(eventsSince(start, type), type).toEqual([expect.objectContaining({ tenant: 'demo', outcome: 'success', client: client.client_id })]);
    }
    const all = JSON.stringify(castellan.audit.slice(start));
    expect(all).not.toContain(client.client_secret);
    expect(all).not.toContain(client.registration_access_token);
  });
});
