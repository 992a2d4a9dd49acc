import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { openDeviceConfirmation } from '../support/device-flow.ts';

/*
 * RFC 8628 §5.4 at the HTTP level (FerretDB + Redis): the device confirmation page names the
 * requested scopes in the same words as the consent page (the tenant's
 * consent.scopeDescriptions, the built-in words for OpenID scopes), the scope's name under
 * them, and the bare name where there are no words.
 */

const TENANT = 'devices';
const CLIENT = 'device-scopes-agent';

describe('device confirmation page: scope descriptions (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'device_confirm_scopes');
    const { storage } = castellan.running;
    await storage.tenants.create({
      id: TENANT, displayName: 'Device Corp',
      settings: {
        deviceFlow: { enabled: true },
        scopes: ['notes:read', 'notes:write'],
        consent: { scopeDescriptions: { 'notes:read': 'Read your <notes>' } },
      },
    });
    await storage.modelStores(TENANT).durable.upsert('Client', CLIENT, {
      client_id: CLIENT, client_name: 'Scope test device', application_type: 'native', token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'], response_types: [], redirect_uris: [],
    });
  });
  afterAll(async () => castellan?.stop());

  it('shows the consent words for each scope, escaped, and the bare name where there are none', async () => {
    const issuer = `${castellan.baseUrl}/t/${TENANT}`;
    const { status, html } = await openDeviceConfirmation(issuer, CLIENT, 'openid offline_access notes:read notes:write');
    expect(status).toBe(200);
    expect(html).toContain('Is this the device in front of you?');
    const items = [...html.matchAll(/<li>(.*?)<\/li>/g)].map((m) => m[1]);
    expect(items).toEqual([
      'Know who you are: sign you in with your account<span class="scope-name"><code>openid</code></span>',
      'Keep access while you are away (a refresh token)<span class="scope-name"><code>offline_access</code></span>',
      'Read your &lt;notes&gt;<span class="scope-name"><code>notes:read</code></span>',
      '<code>notes:write</code>',
    ]);
  });
});
