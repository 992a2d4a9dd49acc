import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, testEnvironment, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, newBrowser, pkcePair, postToken, type Browser } from '../support/oauth.ts';

const REDIRECT = 'https://app.example/cb';

/** Walks /auth until the client redirect, counting the consent pages shown. */
async function authorize(castellan: TestCastellan, browser: Browser, clientId: string): Promise<{ code: string; verifier: string; consentPages: number }> {
  const { verifier, challenge } = pkcePair();
  const query = new URLSearchParams({
    client_id: clientId, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid notes:read',
    resource: 'http://localhost:3001/mcp', code_challenge: challenge, code_challenge_method: 'S256',
  });
  let url = `${castellan.issuer}/auth?${query}`;
  let consentPages = 0;
  for (let step = 0; step < 12; step += 1) {
    if (url.startsWith(REDIRECT)) {
      const code = new URL(url).searchParams.get('code');
      if (!code) throw new Error(url);
      return { code, verifier, consentPages };
    }
    const response = await browser.get(url);
    if (response.status === 303 || response.status === 302) {
      url = new URL(response.headers.get('location') ?? '', url).href;
      continue;
    }
    const html = await response.text();
    const base = `${new URL(url).origin}${new URL(url).pathname}`;
    const next = html.includes('name="password"')
      ? await browser.postForm(`${base}/login`, { login: 'demo', password: castellan.userPassword })
      : (consentPages += 1, await browser.postForm(`${base}/confirm`, {}));
    url = new URL(next.headers.get('location') ?? '', url).href;
  }
  throw new Error('no redirect');
}

describe('the consent policy hook', () => {
  let castellan: TestCastellan;
  const clients: Record<string, { id: string; secret: string }> = {};
  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'castellan-consent-'));
    const path = join(dir, 'policy.mjs');
    // Decides per client id from a table the test fills in once the clients exist.
    await writeFile(path, `export default {
        async acceptRegistration({ metadata }) { return { accept: true }; },
        async consent({ clientId }) { return globalThis.__castellanConsent?.[clientId] ?? 'remember'; },
      };`);
    const env = { ...(await testEnvironment('mongo+redis', 'consent')), CASTELLAN_POLICY_MODULE: path };
    castellan = await startTestCastellan('mongo+redis', 'consent', env);
    for (const mode of ['remember', 'every-time', 'skip']) {
      const response = await fetch(`${castellan.issuer}/reg`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: mode, redirect_uris: [REDIRECT] }),
      });
      const body = (await response.json()) as { client_id: string; client_secret: string };
      clients[mode] = { id: body.client_id, secret: body.client_secret };
    }
    (globalThis as { __castellanConsent?: Record<string, string> }).__castellanConsent = {
      [clients['every-time']?.id ?? '']: 'every-time',
      [clients.skip?.id ?? '']: 'skip',
    };
  });
  afterAll(async () => castellan?.stop());

  it('asks once and remembers by default', async () => {
    const browser = newBrowser();
    expect((await authorize(castellan, browser, clients.remember?.id ?? '')).consentPages).toBe(1);
    expect((await authorize(castellan, browser, clients.remember?.id ?? '')).consentPages).toBe(0);
  });

  it('asks every time when the hook says so', async () => {
    const browser = newBrowser();
    expect((await authorize(castellan, browser, clients['every-time']?.id ?? '')).consentPages).toBe(1);
    expect((await authorize(castellan, browser, clients['every-time']?.id ?? '')).consentPages).toBe(1);
  });

  it('skips consent for a client the hook trusts, granting exactly what was asked', async () => {
    const client = clients.skip ?? { id: '', secret: '' };
    const flow = await authorize(castellan, newBrowser(), client.id);
    expect(flow.consentPages).toBe(0);
    const { status, body } = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', code: flow.code, redirect_uri: REDIRECT, code_verifier: flow.verifier,
    }, basicAuth(client.id, client.secret));
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.scope).toBe('notes:read');
  });
});
