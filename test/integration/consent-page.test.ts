import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { tenantSettingsSchema } from '../../src/tenants/tenant-settings.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { newBrowser, pkcePair, postToken, type Browser } from '../support/oauth.ts';

/*
 * The consent page over HTTP (FerretDB + Redis): scope descriptions, the scope picker and
 * what the grant and tokens then carry, required scopes, prompt=consent, denial; the
 * tenant's branding on the pages; error pages for requests that cannot be redirected.
 */

/** A web client (registered below): oidc-provider asks native clients for consent every time (RFC 8252 §8.6). */
const REDIRECT = 'https://notes-app.example/callback';
const NOTES = 'http://localhost:3001/mcp';
const ACCENT = '#7c2d12';
const LOGO = 'https://brand.example/logo.png';

interface Authorization {
  /** The consent page, when one was shown (the walk stops there). */
  consent?: { url: string; html: string };
  /** The client's redirect, when the walk got there. */
  callback?: URLSearchParams;
  verifier: string;
  state: string;
}

/** From /auth, signs in when asked and stops at the consent page or the client's redirect. */
async function authorize(castellan: TestCastellan, clientId: string, browser: Browser, scope: string, extra: Record<string, string> = {}): Promise<Authorization> {
  const { verifier, challenge } = pkcePair();
  const state = `st-${Math.random().toString(36).slice(2)}`;
  const query = new URLSearchParams({
    client_id: clientId, response_type: 'code', redirect_uri: REDIRECT, scope, state, resource: NOTES,
    code_challenge: challenge, code_challenge_method: 'S256', ...extra,
  });
  let url = `${castellan.issuer}/auth?${query}`;
  for (let step = 0; step < 12; step += 1) {
    if (url.startsWith(REDIRECT)) return { callback: new URL(url).searchParams, verifier, state };
    const response = await browser.get(url);
    if (response.status === 303 || response.status === 302) {
      url = new URL(response.headers.get('location') ?? '', url).href;
      continue;
    }
    const html = await response.text();
    expect(response.status, html.slice(0, 300)).toBe(200);
    if (!html.includes('name="password"')) return { consent: { url, html }, verifier, state };
    const login = await browser.postForm(`${url}/login`, { login: 'demo', password: castellan.userPassword });
    url = new URL(login.headers.get('location') ?? '', url).href;
  }
  throw new Error('the authorization did not reach a consent page or the client');
}

/** Posts the consent page's answer and follows the redirects back to the client. */
async function answer(browser: Browser, consentUrl: string, action: 'confirm' | 'abort', form: Record<string, string>): Promise<URLSearchParams> {
  let response = await browser.postForm(`${consentUrl}/${action}`, form);
  let url = consentUrl;
  for (let step = 0; step < 6; step += 1) {
    expect(response.status, await response.clone().text()).toBe(303);
    url = new URL(response.headers.get('location') ?? '', url).href;
    if (url.startsWith(REDIRECT)) return new URL(url).searchParams;
    response = await browser.get(url);
  }
  throw new Error('no redirect to the client');
}

/** The checkbox (or required marker) for a scope on the consent page. */
function checkboxFor(html: string, scope: string): string {
  const escaped = scope.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const named = new RegExp(`<input type="checkbox"[^>]*name="scope" value="${escaped}"[^>]*>`).exec(html)?.[0];
  if (named) return named;
  const required = new RegExp(`<input type="checkbox"[^>]*disabled[^>]*>(?:(?!</li>).)*<input type="hidden" name="scope" value="${escaped}">`).exec(html)?.[0];
  return required ?? '';
}

describe('the consent page and its scope picker (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let clientId: string;

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'consent_page');
    const registered = await fetch(`${castellan.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'Notes web app', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }),
    });
    expect(registered.status).toBe(201);
    clientId = ((await registered.json()) as { client_id: string }).client_id;
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        branding: { accentColor: ACCENT, logoUri: LOGO },
        consent: {
          scopeDescriptions: { 'notes:read': 'Read your notes', 'notes:write': 'Create & change your <notes>' },
          requiredScopes: ['notes:read'],
        },
      },
    });
    castellan.running.tenants.invalidate('demo');
  });
  afterAll(async () => castellan?.stop());

  /** Redeems a code for the web client; returns the token response and the JWT access token's claims. */
  async function redeem(params: URLSearchParams, verifier: string) {
    const { status, body } = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', client_id: clientId, code: params.get('code') ?? '', redirect_uri: REDIRECT,
      code_verifier: verifier, resource: NOTES,
    });
    expect(status, JSON.stringify(body)).toBe(200);
    return { body, claims: decodeJwt(String(body.access_token)) };
  }

  /** The stored grant behind an authorization code (read before the code is redeemed). */
  async function grantOf(params: URLSearchParams) {
    const { provider } = await castellan.running.tenants.get('demo');
    const code = await provider.AuthorizationCode.find(params.get('code') ?? '');
    const grant = code?.grantId ? await provider.Grant.find(code.grantId) : undefined;
    if (!grant) throw new Error('no grant behind the code');
    return grant;
  }

  it('shows each scope with its words, required ones fixed, the resource by name, the client and the tenant\'s look', async () => {
    const { consent } = await authorize(castellan, clientId, newBrowser(), 'openid email notes:read notes:write');
    const html = consent?.html ?? '';
    expect(html).toContain('Allow access?');
    expect(html).toContain('<strong>Notes web app</strong>');
    // Tenant words, escaped; built-in words for the OpenID scopes.
    expect(html).toContain('Read your notes');
    expect(html).toContain('Create &amp; change your &lt;notes&gt;');
    expect(html).not.toContain('<notes>');
    expect(html).toContain('See your email address');
    expect(html).toContain('Know who you are');
    // openid and the tenant's required scope cannot be unchecked; the others can.
    expect(checkboxFor(html, 'openid')).toMatch(/checked disabled/);
    expect(checkboxFor(html, 'notes:read')).toMatch(/checked disabled/);
    expect(checkboxFor(html, 'email')).toMatch(/name="scope" value="email" checked/);
    expect(checkboxFor(html, 'notes:write')).toMatch(/name="scope" value="notes:write" checked/);
    // Every checkbox has a label.
    const ids = [...html.matchAll(/<input type="checkbox" id="([^"]+)"/g)].map((m) => m[1]);
    expect(ids.length).toBe(4);
    for (const id of ids) expect(html).toContain(`<label for="${id}">`);
    // The audience being granted, by name and URI.
    expect(html).toContain('Demo notes MCP server');
    expect(html).toContain(NOTES);
    // Branding: accent colour in the one stylesheet, the https logo in the header.
    expect(html).toContain(`--accent:${ACCENT}`);
    expect(html).toContain(`<img src="${LOGO}" alt=""`);
    expect(html).toContain('Castellan demo');
  });

  it('grants exactly what stays checked: an unchecked scope is neither in the grant nor in the tokens, and is not asked again', async () => {
    const browser = newBrowser();
    const first = await authorize(castellan, clientId, browser, 'openid email notes:read notes:write');
    // email stays checked, notes:write is unchecked; required ones are not even posted.
    const params = await answer(browser, first.consent?.url ?? '', 'confirm', { picker: '1', scope: 'email' });
    const grant = await grantOf(params);
    expect(grant.getOIDCScope().split(' ').sort()).toEqual(['email', 'notes:read', 'openid']);
    expect(grant.getResourceScope(NOTES)).toBe('notes:read');
    expect(grant.getRejectedOIDCScope()).toBe('notes:write');
    expect(grant.getRejectedResourceScope(NOTES)).toBe('notes:write');
    const { body, claims } = await redeem(params, first.verifier);
    expect(claims.aud).toBe(NOTES);
    expect(claims.scope).toBe('notes:read');
    expect(String(body.scope)).not.toContain('notes:write');

    // The same request again: remembered (the unchecked scope counts as answered), no consent loop.
    const again = await authorize(castellan, clientId, browser, 'openid email notes:read notes:write');
    expect(again.consent, 'no consent page the second time').toBeUndefined();
    expect(again.callback?.get('code')).toBeTruthy();
    const second = await redeem(again.callback ?? new URLSearchParams(), again.verifier);
    expect(second.claims.scope).toBe('notes:read');

    // prompt=consent asks again, the left-out scope unchecked; checking it now grants it.
    const reasked = await authorize(castellan, clientId, browser, 'openid email notes:read notes:write', { prompt: 'consent' });
    const html = reasked.consent?.html ?? '';
    expect(html).toContain('Allow access?');
    expect(checkboxFor(html, 'notes:write')).not.toMatch(/checked/);
    expect(checkboxFor(html, 'email')).toMatch(/checked/);
    const regranted = await answer(browser, reasked.consent?.url ?? '', 'confirm', { picker: '1', scope: 'notes:write' });
    const regrant = await grantOf(regranted);
    expect(regrant.getResourceScope(NOTES).split(' ').sort()).toEqual(['notes:read', 'notes:write']);
    // email was unchecked this time: taken back.
    expect(regrant.getOIDCScope().split(' ')).not.toContain('email');
    const third = await redeem(regranted, reasked.verifier);
    expect(String(third.claims.scope).split(' ').sort()).toEqual(['notes:read', 'notes:write']);
  });

  it('never grants more than was asked: a forged scope is ignored and required scopes cannot be removed', async () => {
    const browser = newBrowser();
    const flow = await authorize(castellan, clientId, browser, 'openid notes:read');
    // reports:read is a real scope of the tenant, but this request did not ask for it; nothing else is checked.
    const params = await answer(browser, flow.consent?.url ?? '', 'confirm', { picker: '1', scope: 'reports:read' });
    const grant = await grantOf(params);
    expect(grant.getOIDCScope().split(' ').sort()).toEqual(['notes:read', 'openid']);
    expect(grant.getResourceScope(NOTES)).toBe('notes:read');
    expect(JSON.stringify({ openid: grant.openid, resources: grant.resources })).not.toContain('reports:read');
    const { claims } = await redeem(params, flow.verifier);
    expect(claims.scope).toBe('notes:read');
  });

  it('treats a consent with nothing left checked as a denial, not as another consent page', async () => {
    const browser = newBrowser();
    // Only notes:write is asked (no openid, nothing required), and the user unchecks it.
    const flow = await authorize(castellan, clientId, browser, 'notes:write');
    expect(checkboxFor(flow.consent?.html ?? '', 'notes:write')).toMatch(/checked/);
    const params = await answer(browser, flow.consent?.url ?? '', 'confirm', { picker: '1' });
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('state')).toBe(flow.state);
    expect(params.get('code')).toBeNull();
  });

  it('returns access_denied with state and iss to the client when the user denies', async () => {
    const browser = newBrowser();
    const flow = await authorize(castellan, clientId, browser, 'openid notes:read');
    const params = await answer(browser, flow.consent?.url ?? '', 'abort', {});
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('state')).toBe(flow.state);
    expect(params.get('iss')).toBe(castellan.issuer);
    expect(params.get('code')).toBeNull();
  });

  it('shows the tenant\'s look on the sign-in page too', async () => {
    const browser = newBrowser();
    const query = new URLSearchParams({
      client_id: clientId, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid',
      code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
    });
    const start = await browser.get(`${castellan.issuer}/auth?${query}`);
    const page = await browser.get(new URL(start.headers.get('location') ?? '', castellan.issuer).href);
    const html = await page.text();
    expect(html).toContain('name="password"');
    expect(html).toContain(`--accent:${ACCENT}`);
    expect(html).toContain(`<img src="${LOGO}"`);
    expect(html).toContain('<meta name="viewport" content="width=device-width,initial-scale=1">');
    expect(html).not.toMatch(/<script|\son[a-z]+=/i);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'; style-src 'nonce-[^']+'; img-src 'self' https:; frame-ancestors 'none'/);
  });
});

describe('error pages for requests that cannot go back to the client', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'error_pages');
  });
  afterAll(async () => castellan?.stop());

  const BAD_URI = 'https://evil.example/cb?x="><script>alert(1)</script>';
  const authUrl = (clientId: string, redirectUri: string) => `${castellan.issuer}/auth?${new URLSearchParams({
    client_id: clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid', state: 'st<b>',
    code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
  })}`;
  const asBrowser = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

  async function expectErrorPage(response: Response, error: string): Promise<string> {
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(response.headers.get('content-security-policy')).not.toContain('unsafe-inline');
    const html = await response.text();
    expect(html).toContain('Something went wrong');
    expect(html).toContain(`<code>${error}</code>`);
    // Nothing of the request is echoed raw, and there is nowhere to go from here.
    expect(html).not.toContain('<script');
    expect(html).not.toContain('evil.example');
    expect(html).not.toContain('<b>');
    expect(html).not.toMatch(/<a\s|<form|http-equiv="refresh"/i);
    return html;
  }

  it('answers an unknown client_id with a page for browsers and JSON otherwise, never a redirect', async () => {
    const url = authUrl('no-such-client', BAD_URI);
    await expectErrorPage(await fetch(url, { headers: asBrowser, redirect: 'manual' }), 'invalid_client');
    const json = await fetch(url, { redirect: 'manual' });
    expect(json.status).toBe(400);
    expect(json.headers.get('location')).toBeNull();
    expect(await json.json()).toMatchObject({ error: 'invalid_client' });
  });

  it('answers a redirect_uri the client never registered with a page for browsers and JSON otherwise', async () => {
    const url = authUrl('demo-agent', BAD_URI);
    await expectErrorPage(await fetch(url, { headers: asBrowser, redirect: 'manual' }), 'invalid_redirect_uri');
    const json = await fetch(url, { redirect: 'manual' });
    expect(json.status).toBe(400);
    expect(json.headers.get('location')).toBeNull();
    expect(await json.json()).toMatchObject({ error: 'invalid_redirect_uri' });
  });

  it('renders Castellan\'s own errors on the interaction routes as a page for browsers', async () => {
    const url = `${castellan.issuer}/interaction/unknown-interaction`;
    const page = await fetch(url, { headers: asBrowser });
    expect(page.status).toBe(400);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('Something went wrong');
    expect(html).toContain('<code>invalid_request</code>');
    const json = await fetch(url);
    expect(json.status).toBe(400);
    expect(await json.json()).toMatchObject({ error: 'invalid_request' });
  });

  it('renders errors of /session/end for browsers too', async () => {
    const url = `${castellan.issuer}/session/end?${new URLSearchParams({ post_logout_redirect_uri: BAD_URI, client_id: 'demo-agent' })}`;
    const page = await fetch(url, { headers: asBrowser, redirect: 'manual' });
    await expectErrorPage(page, 'invalid_request');
    const json = await fetch(url, { redirect: 'manual' });
    expect(json.status).toBe(400);
    expect(await json.json()).toMatchObject({ error: 'invalid_request' });
  });
});

describe('branding and consent settings in the tenant schema', () => {
  const parse = (settings: Record<string, unknown>) => tenantSettingsSchema.safeParse(settings);

  it('accepts an accent colour white text is readable on, and an https logo', () => {
    const parsed = parse({ branding: { accentColor: '#7c2d12', logoUri: LOGO } });
    expect(parsed.success).toBe(true);
    expect(parsed.data?.branding).toEqual({ accentColor: '#7c2d12', logoUri: LOGO });
    expect(parse({}).data?.branding.accentColor).toBe('#1d4ed8');
  });

  it('refuses an accent colour below WCAG AA contrast with white, a non-colour, and a logo that is not https', () => {
    for (const accentColor of ['#3b82f6', '#ffff00', '#777777', 'red', '#12345', 'url(x)']) {
      expect(parse({ branding: { accentColor } }).success, accentColor).toBe(false);
    }
    // #767676 is the lightest grey that passes (4.54:1).
    expect(parse({ branding: { accentColor: '#767676' } }).success).toBe(true);
    for (const logoUri of ['http://brand.example/logo.png', 'javascript:alert(1)', 'data:image/png;base64,AA==']) {
      expect(parse({ branding: { logoUri } }).success, logoUri).toBe(false);
    }
  });

  it('refuses scope descriptions and required scopes that are not scope tokens', () => {
    expect(parse({ consent: { scopeDescriptions: { 'notes read': 'x' } } }).success).toBe(false);
    expect(parse({ consent: { scopeDescriptions: { 'notes:read': '' } } }).success).toBe(false);
    expect(parse({ consent: { requiredScopes: ['a"b'] } }).success).toBe(false);
    expect(parse({ consent: { requiredScopes: ['notes:read'], scopeDescriptions: { 'notes:read': 'Read your notes' } } }).success).toBe(true);
  });
});
