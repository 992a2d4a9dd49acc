import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { openDeviceConfirmation } from '../support/device-flow.ts';

/*
 * Remote phishing with the device flow (RFC 8628 §5.4): an attacker starts a device
 * authorization and sends the person the code. Before anything is granted, the confirmation
 * page shows who asks (the client's name, escaped), the code, what is asked for, the device
 * that started it, a warning, and a way to say No.
 */
const TENANT = 'phish';
const CLIENT = 'phishing-device';
const CLIENT_NAME = 'Notes <b>TV</b> & "friends"';
const DEVICE_UA = 'SmartTV/1.0 <script>alert(1)</script>';

describe('device confirmation page against remote phishing (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_device_phishing');
    const { storage } = castellan.running;
    await storage.tenants.create({ id: TENANT, displayName: 'Phish Test', settings: { deviceFlow: { enabled: true }, scopes: ['notes:read'] } });
    await storage.modelStores(TENANT).durable.upsert('Client', CLIENT, {
      client_id: CLIENT, client_name: CLIENT_NAME, application_type: 'native', token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code'], response_types: [], redirect_uris: [],
    });
  });
  afterAll(async () => castellan?.stop());

  it('names the client, the code, the scopes and the requesting device, escaped, warns, and offers No', async () => {
    const issuer = `${castellan.baseUrl}/t/${TENANT}`;
    const { userCode, status, html } = await openDeviceConfirmation(issuer, CLIENT, 'notes:read', { 'user-agent': DEVICE_UA });
    expect(status).toBe(200);

    expect(html).toContain('<strong>Notes &lt;b&gt;TV&lt;/b&gt; &amp; &quot;friends&quot;</strong>');
    expect(html).not.toContain('<b>TV</b>');
    expect(html).toContain(`<strong class="host">${userCode}</strong>`);
    expect(html).toContain('<code>notes:read</code>');
    expect(html).toContain('Requested by: SmartTV/1.0 &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('If you did not start this on a device you have, or the code differs, choose No.');
    expect(html).toMatch(/<button[^>]*name="abort"[^>]*>No, cancel<\/button>/);
  });
});
