import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth } from '../support/oauth.ts';
import { createOtherTenant, OPAQUE_RESOURCE, serviceToken } from '../resource-server/support.ts';

/*
 * Tokens of one tenant at another tenant's endpoints (RFC 9700 §4.4: each tenant is its own
 * issuer; RFC 7662 §2.2, RFC 7009 §2.2): tenant `other` must treat a `demo` token as unknown,
 * and nothing done there may touch it.
 */
describe('tokens of one tenant at another tenant\'s endpoints (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let other: { issuer: string; clientId: string; secret: string };
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_cross_tenant');
    other = await createOtherTenant(castellan);
  });
  afterAll(async () => castellan?.stop());

  const post = (issuer: string, path: string, form: Record<string, string>, authorization: string) =>
    fetch(`${issuer}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
      body: new URLSearchParams(form).toString(),
    });
  const introspect = async (issuer: string, token: string, authorization: string) =>
    (await (await post(issuer, '/token/introspection', { token }, authorization)).json()) as Record<string, unknown>;
  const demoAuth = () => basicAuth('demo-service', castellan.clientSecret);
  const otherAuth = () => basicAuth(other.clientId, other.secret);

  it('introspects a demo token as inactive at tenant other, and its revocation there leaves it alive', async () => {
    const token = await serviceToken(castellan, { resource: OPAQUE_RESOURCE, scope: 'reports:read' });
    expect(await introspect(castellan.issuer, token, demoAuth())).toMatchObject({ active: true });
    expect(await introspect(other.issuer, token, otherAuth())).toEqual({ active: false });
    const revoked = await post(other.issuer, '/token/revocation', { token }, otherAuth());
    expect(revoked.status).toBe(200);
    expect(await introspect(castellan.issuer, token, demoAuth())).toMatchObject({ active: true });
  });

  it('does not let demo-service authenticate at tenant other, with its own secret', async () => {
    const response = await post(other.issuer, '/token', { grant_type: 'client_credentials' }, demoAuth());
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: 'invalid_client' });
  });
});
