import { describe, expect, it } from 'vitest';
import { createMetrics, oauthErrorLabel, routeClassOf } from './metrics.ts';

describe('metric labels stay bounded', () => {
  it('reduces paths to route classes', () => {
    expect(routeClassOf('/t/acme/token')).toBe('token');
    expect(routeClassOf('/t/acme/token/introspection')).toBe('introspection');
    expect(routeClassOf('/t/acme/token/revocation')).toBe('revocation');
    expect(routeClassOf('/t/acme/auth')).toBe('authorization');
    expect(routeClassOf('/t/acme/auth/abc123')).toBe('authorization');
    expect(routeClassOf('/t/acme/interaction/xyz/login')).toBe('interaction');
    expect(routeClassOf('/t/acme/reg/some-client')).toBe('registration');
    expect(routeClassOf('/t/acme/device')).toBe('device');
    expect(routeClassOf('/.well-known/oauth-authorization-server/t/acme')).toBe('well-known');
    expect(routeClassOf('/t/acme/.well-known/openid-configuration')).toBe('well-known');
    expect(routeClassOf('/readyz')).toBe('health');
    expect(routeClassOf('/t/acme/anything/else')).toBe('other');
    expect(routeClassOf('/random/path')).toBe('other');
  });

  it('keeps only known OAuth error codes', () => {
    expect(oauthErrorLabel('invalid_grant')).toBe('invalid_grant');
    expect(oauthErrorLabel('attacker_chosen_value')).toBe('other');
    expect(oauthErrorLabel(undefined)).toBe('other');
  });

  it('gives each server its own registry', async () => {
    const a = createMetrics({ defaultMetrics: false });
    const b = createMetrics({ defaultMetrics: false });
    a.observeRequest('GET', '/healthz', 200, 0.001);
    a.observeRequest('BREW', '/healthz', 200, 0.001);
    expect(await a.render()).toContain('castellan_http_requests_total{method="GET",route="health",status="200"} 1');
    expect(await a.render()).toContain('castellan_http_requests_total{method="other",route="health",status="200"} 1');
    expect(await b.render()).not.toContain('route="health"');
  });

  it('reports the audit journal backlog at each scrape, and NaN when the journal does not answer', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    expect(await metrics.render()).not.toMatch(/^castellan_audit_journal_entries /m);
    let backlog: () => Promise<number> = async () => 7;
    metrics.watchAuditJournal(() => backlog());
    expect(await metrics.render()).toMatch(/^castellan_audit_journal_entries 7$/m);
    backlog = () => Promise.reject(new Error('Connection is closed.'));
    expect(await metrics.render()).toMatch(/^castellan_audit_journal_entries Nan$/im);
    // A Redis that never answers: the scrape still ends (after about a second).
    backlog = () => new Promise<number>(() => {});
    expect(await metrics.render()).toMatch(/^castellan_audit_journal_entries Nan$/im);
    backlog = async () => 0;
    expect(await metrics.render()).toMatch(/^castellan_audit_journal_entries 0$/m);
  });
});
