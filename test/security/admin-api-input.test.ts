import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminRoutes, type AdminServices } from '../../src/admin/api/admin-routes.ts';
import { adminResourceUri, createAdminClient } from '../../src/admin/services/system-tenant.ts';
import { createMemoryAuditSink } from '../../src/observability/audit.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, postToken } from '../support/oauth.ts';

/**
 * Whatever an admin sends, the admin API answers with a result or a 4xx problem, never a 500
 * or a stack: random path segments, query strings and JSON bodies on every route.
 */
describe('admin API input (property)', () => {
  let castellan: TestCastellan;
  let token = '';
  const routes = adminRoutes(new Proxy({}, { get: () => ({}) }) as AdminServices);

  beforeAll(async () => {
    castellan = await startTestCastellan('memory', 'admin_input');
    const core = { storage: castellan.running.storage, tenants: castellan.running.tenants, audit: createMemoryAuditSink() };
    const { clientSecret } = await createAdminClient(core, { tenantId: 'system', clientId: 'ops' }, { via: 'cli', subject: 'test' });
    const answer = await postToken(`${castellan.baseUrl}/t/system`, { grant_type: 'client_credentials', resource: adminResourceUri(castellan.baseUrl), scope: 'admin:read admin:write' }, basicAuth('ops', String(clientSecret)));
    token = String(answer.body.access_token);
  });
  afterAll(async () => castellan?.stop());

  const segment = fc.oneof(fc.constantFrom('demo', 'demo-agent', 'demo-service', '%00', '..', '%E0%A4%A', 'a:b', 'x'.repeat(300)), fc.string({ maxLength: 20 }).map(encodeURIComponent));
  // Mostly a tenant that exists, so the requests get past the tenant lookup.
  const tenantSegment = fc.oneof({ weight: 4, arbitrary: fc.constant('demo') }, { weight: 1, arbitrary: segment });
  const query = fc.dictionary(fc.constantFrom('userId', 'clientId', 'type', 'from', 'to', 'after', 'limit', 'other'), fc.string({ maxLength: 30 }), { maxKeys: 3 });
  const body = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.record({ id: fc.string(), displayName: fc.string(), settings: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }),
    fc.record({ client_id: fc.string(), grant_types: fc.jsonValue(), redirect_uris: fc.jsonValue(), token_endpoint_auth_method: fc.string(), scope: fc.string() }, { requiredKeys: [] }),
    fc.record({ login: fc.string(), password: fc.string(), email: fc.string(), userId: fc.string(), alg: fc.string() }, { requiredKeys: [] }),
  );

  it('never answers 5xx, and every error is a problem document', async () => {
    // The system tenant is left alone: a random change to it could lock this test out.
    const safeRoutes = routes.filter((r) => r.method === 'GET' || r.path !== '/tenants/{tenant}/disable');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...safeRoutes), fc.tuple(tenantSegment, segment, segment), query, body, async (route, segments, params, json) => {
        let i = 0;
        const path = route.path.replace(/\{\w+\}/g, () => (segments[i++] === 'system' ? 'demo' : (segments[i - 1] ?? 'x')));
        const search = new URLSearchParams(params).toString();
        const response = await fetch(`${castellan.baseUrl}/admin/v1${path}${search ? `?${search}` : ''}`, {
          method: route.method,
          headers: { authorization: `Bearer ${token}`, ...(route.body ? { 'content-type': 'application/json' } : {}) },
          ...(route.body ? { body: JSON.stringify(json) } : {}),
        });
        const text = await response.text();
        expect(response.status, `${route.method} ${path}: ${text.slice(0, 300)}`).toBeLessThan(500);
        if (response.status >= 400) {
          expect(response.headers.get('content-type')).toContain('application/problem+json');
          expect(JSON.parse(text)).toMatchObject({ status: response.status, title: expect.any(String), detail: expect.any(String) });
        }
      }),
      { numRuns: 300 },
    );
  });
});
