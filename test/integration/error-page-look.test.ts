import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { newBrowser } from '../support/oauth.ts';

/*
 * Castellan's own HTML error pages (src/http/error-handler.ts) carry the tenant's look once
 * the tenant is known: its display name and accent colour, as the sign-in pages do. Where
 * the tenant is unknown they stay neutral; JSON clients get JSON as before.
 */

const ACCENT = '#7c2d12';

describe('error pages in the tenant\'s look (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'error_page_look');
    await castellan.running.storage.tenants.create({
      id: 'branded', displayName: 'Branded Corp',
      settings: { displayName: 'Branded Corp', branding: { accentColor: ACCENT, logoUri: 'https://branded.example/logo.svg' } },
    });
  });
  afterAll(async () => castellan?.stop());

  const header = (html: string) => /<header>(.*?)<\/header>/s.exec(html)?.[1] ?? '';

  it('shows a lost interaction of a known tenant in that tenant\'s look', async () => {
    const response = await newBrowser().get(`${castellan.baseUrl}/t/branded/interaction/no-such-interaction`);
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    const html = await response.text();
    expect(html).toContain('<h1>Something went wrong</h1>');
    expect(header(html)).toContain('<span class="tenant">Branded Corp</span>');
    expect(header(html)).toContain('src="https://branded.example/logo.svg"');
    expect(html).toContain(`--accent:${ACCENT}`);
    expect(html).toContain('<title>Something went wrong · Branded Corp</title>');
  });

  it('keeps the neutral look where the tenant is unknown, and JSON for JSON clients', async () => {
    const unknown = await newBrowser().get(`${castellan.baseUrl}/t/no-such-tenant/interaction/whatever`);
    expect(unknown.status).toBeGreaterThanOrEqual(400);
    const html = await unknown.text();
    expect(header(html)).toBe('<span class="tenant">Castellan</span>');
    expect(html).not.toContain(ACCENT);

    const json = await fetch(`${castellan.baseUrl}/t/branded/interaction/no-such-interaction`, { headers: { accept: 'application/json' } });
    expect(json.headers.get('content-type')).toMatch(/application\/json/);
    expect(Object.keys((await json.json()) as object)).toContain('error');
  });
});
