import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';

/*
 * Tenant ids that begin like an endpoint (`reg`, `registry`, `device`, `tokens`, `me`): the
 * URLs oidc-provider builds while answering (registration_client_uri, the device page's form
 * action) must still carry /t/<tenant>. It used to cut its mount path at the first
 * occurrence of the route in the path, inside the tenant id.
 */
const TENANTS = ['reg', 'registry', 'device', 'devices', 'tokens', 'me'];

describe('tenant ids that begin like an endpoint (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'tenant_names');
    for (const id of TENANTS) {
      await castellan.running.storage.tenants.create({
        id, displayName: id, settings: { scopes: ['notes:read'], registration: { mode: 'open' }, deviceFlow: { enabled: true } },
      });
    }
  });
  afterAll(async () => castellan?.stop());

  it.each(TENANTS)('tenant %s: registration_client_uri is under /t/<tenant>/reg and reads the client back', async (tenant) => {
    const issuer = `${castellan.baseUrl}/t/${tenant}`;
    const registered = await fetch(`${issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'names', redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none' }),
    });
    expect(registered.status).toBe(201);
    const body = (await registered.json()) as { client_id: string; registration_client_uri: string; registration_access_token: string };
    expect(body.registration_client_uri).toBe(`${issuer}/reg/${body.client_id}`);
    const read = await fetch(body.registration_client_uri, { headers: { authorization: `Bearer ${body.registration_access_token}` } });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { client_id: string }).client_id).toBe(body.client_id);
  });

  it.each(TENANTS)("tenant %s: the device page's form posts under /t/<tenant>/device", async (tenant) => {
    const issuer = `${castellan.baseUrl}/t/${tenant}`;
    const page = await fetch(`${issuer}/device`);
    expect(page.status).toBe(200);
    const actions = [...(await page.text()).matchAll(/action="([^"]+)"/g)].map((m) => m[1]);
    expect(actions.length).toBeGreaterThan(0);
    for (const action of actions) expect(new URL(action ?? '', issuer).pathname).toMatch(new RegExp(`^/t/${tenant}/device`));
  });
});
