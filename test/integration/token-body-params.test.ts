import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth } from '../support/oauth.ts';

/*
 * Castellan reads /token forms itself (device polling, refresh retry) and hands them to
 * oidc-provider (src/http/provider-body.ts): a repeated parameter must reach the provider as
 * repeated, so its duplicate check still refuses what it refuses when it reads the body
 * itself, instead of seeing only the last value.
 */

const RESOURCE = 'http://localhost:3001/mcp';

describe('token endpoint: repeated form parameters reach oidc-provider', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('memory', 'token-body-params');
  });
  afterAll(async () => {
    await castellan?.stop();
  });

  async function post(body: string): Promise<{ status: number; json: Record<string, unknown> }> {
    const response = await fetch(`${castellan.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('demo-service', castellan.clientSecret) },
      body,
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  }

  it('answers a single-valued request (the control)', async () => {
    const { status, json } = await post(new URLSearchParams({ grant_type: 'client_credentials', resource: RESOURCE, scope: 'notes:read' }).toString());
    expect(status).toBe(200);
    expect(typeof json.access_token).toBe('string');
  });

  it('refuses a repeated grant_type as oidc-provider does, instead of using the last one', async () => {
    const body = `grant_type=authorization_code&grant_type=client_credentials&resource=${encodeURIComponent(RESOURCE)}&scope=notes%3Aread`;
    const { status, json } = await post(body);
    expect(status).toBe(400);
    expect(json).toMatchObject({ error: 'invalid_request' });
    expect(String(json.error_description)).toMatch(/grant_type/);
  });

  it('refuses a repeated scope, which would otherwise be read as the last value', async () => {
    const body = `grant_type=client_credentials&resource=${encodeURIComponent(RESOURCE)}&scope=notes%3Aread&scope=notes%3Aread`;
    const { status, json } = await post(body);
    expect(status).toBe(400);
    expect(json).toMatchObject({ error: 'invalid_request' });
  });
});
