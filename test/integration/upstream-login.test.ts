import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { freePort } from '../support/running-server.ts';
import { followAuthorization, locationOf, newBrowser, pkcePair, postToken, type Browser } from '../support/oauth.ts';
import { createUpstreamIdp } from '../support/upstream-idp.ts';

/*
 * "Sign in with <IdP>" over HTTP on FerretDB + Redis, with real OpenID Connect on both
 * sides: a second tenant of the same Castellan ("upstream") is the upstream OpenID Provider
 * of the demo tenant, which signs its users in there with openid-client (code + PKCE + nonce
 * + state) and links the upstream identity to a local user. Both tenants set cookies of the
 * same names (oidc-provider's `_interaction`, `_session`...) under /t/demo and /t/upstream:
 * newBrowser's jar keeps them apart by path, as a browser does.
 */

const REDIRECT = 'http://127.0.0.1:53100/callback';
const SECRET_ENV = 'CASTELLAN_TEST_UPSTREAM_LOGIN_SECRET';
const UPSTREAM_CLIENT = 'castellan-demo';

/** What the rogue upstream's token endpoint puts into its id_token, given the request's nonce. */
type IdTokenMaker = (nonce: string, key: { signing: CryptoKey; other: CryptoKey }) => Promise<string | { error: string }>;

/**
 * A hand-made upstream that answers the token request with whatever id_token a test asks
 * for: what openid-client must refuse is only reachable through an IdP that misbehaves.
 */
async function startRogueIdp(): Promise<{ issuer: string; server: Server; answer: { make: IdTokenMaker; nonce: string } }> {
  const { privateKey: signing, publicKey } = await generateKeyPair('RS256');
  const { privateKey: other } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'rogue-1', alg: 'RS256', use: 'sig' };
  const answer: { make: IdTokenMaker; nonce: string } = { make: async () => ({ error: 'invalid_grant' }), nonce: '' };
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const json = (res: import('node:http').ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const server = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'],
        authorization_response_iss_parameter_supported: true,
      });
    }
    if (req.url === '/jwks') return json(res, 200, { keys: [jwk] });
    if (req.url === '/token' && req.method === 'POST') {
      req.resume();
      req.on('end', () => {
        answer.make(answer.nonce, { signing, other }).then(
          (made) => (typeof made === 'string' ? json(res, 200, { access_token: 'rogue-at', token_type: 'Bearer', id_token: made }) : json(res, 400, made)),
          () => json(res, 500, {}),
        );
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { issuer, server, answer };
}

describe('"Sign in with <IdP>": upstream OpenID Connect login per tenant (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let rogue: Awaited<ReturnType<typeof startRogueIdp>>;
  let upstreamIssuer: string;
  let callbackUri: string;
  const people = {
    alice: { password: randomBytes(12).toString('base64url'), id: '' },
    bob: { password: randomBytes(12).toString('base64url'), id: '' },
    carol: { password: randomBytes(12).toString('base64url'), id: '' },
  };

  /** Downstream: a browser starts the demo agent's authorization and lands on the login page. */
  async function openLoginPage(browser: Browser, extra: Record<string, string> = {}): Promise<{ interaction: string; html: string; verifier: string }> {
    const { verifier, challenge } = pkcePair();
    const query = new URLSearchParams({
      client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid profile email',
      state: 'downstream-state', code_challenge: challenge, code_challenge_method: 'S256', ...extra,
    });
    const authorize = await browser.get(`${castellan.issuer}/auth?${query}`);
    const interaction = locationOf(authorize, castellan.issuer);
    expect(interaction).toMatch(/\/t\/demo\/interaction\/[A-Za-z0-9_-]+$/);
    const page = await browser.get(interaction);
    expect(page.status).toBe(200);
    return { interaction, html: await page.text(), verifier };
  }

  /** Clicks "Sign in with Partner IdP": the redirect to the upstream's authorization endpoint. */
  async function chooseUpstream(browser: Browser, interaction: string, idp = 'partner'): Promise<Response> {
    return browser.postForm(`${interaction}/upstream`, { idp });
  }

  /** Upstream: signs in and approves there; returns the callback URL the upstream sends the browser to. */
  async function upstreamSignIn(browser: Browser, upstreamAuthorization: string, login: keyof typeof people): Promise<string> {
    const params = await followAuthorization(browser, upstreamAuthorization, callbackUri, login, people[login].password);
    return `${callbackUri}?${params}`;
  }

  /** Downstream again: the callback, consent, the code, the tokens. */
  async function finishDownstream(browser: Browser, callback: string, verifier: string, codes: string[] = []): Promise<Record<string, unknown>> {
    const params = await followAuthorization(browser, callback, REDIRECT, 'unused', 'unused');
    const code = params.get('code');
    expect(code, params.toString()).toBeTruthy();
    expect(params.get('state')).toBe('downstream-state');
    codes.push(code ?? '');
    const tokens = await postToken(castellan.issuer, {
      grant_type: 'authorization_code', client_id: 'demo-agent', code: code ?? '', redirect_uri: REDIRECT, code_verifier: verifier,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    return tokens.body;
  }

  /** A browser taken through the login page and the upstream, stopped at the callback. */
  async function atCallback(login: keyof typeof people): Promise<{ browser: Browser; interaction: string; callback: string; verifier: string }> {
    const browser = newBrowser();
    const { interaction, verifier } = await openLoginPage(browser);
    const redirect = await chooseUpstream(browser, interaction);
    expect(redirect.status).toBe(303);
    const callback = await upstreamSignIn(browser, locationOf(redirect, interaction), login);
    return { browser, interaction, callback, verifier };
  }

  /** A standard error (OAuth JSON, or the same error on a page for a browser that prefers HTML), never a redirect. */
  const expectOAuthError = async (response: Response, status: number, description: RegExp) => {
    expect(response.status).toBe(status);
    expect(response.headers.get('location')).toBeNull();
    const text = await response.text();
    if (response.headers.get('content-type')?.includes('json')) {
      const body = JSON.parse(text) as Record<string, unknown>;
      expect(body).toMatchObject({ error: 'invalid_request' });
      expect(String(body.error_description)).toMatch(description);
    } else {
      expect(text).toContain('<code>invalid_request</code>');
      expect(text).toMatch(description);
    }
  };

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'upstream_login');
    rogue = await startRogueIdp();
    const { storage } = castellan.running;
    callbackUri = `${castellan.issuer}/upstream/callback`;

    // The upstream IdP: a tenant of its own with a confidential client for the demo tenant.
    const upstream = await createUpstreamIdp(castellan, UPSTREAM_CLIENT, SECRET_ENV);
    expect(upstream.created).toBe(true);
    upstreamIssuer = upstream.issuer;
    for (const [login, person] of Object.entries(people)) {
      const user = await storage.users.create({
        tenant: 'upstream', login, password: person.password,
        claims: { name: `${login[0]?.toUpperCase()}${login.slice(1)} Upstream`, email: `${login}@partner.example`, email_verified: true },
      });
      person.id = user.id;
    }

    const deadPort = await freePort();
    await storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        upstreamIdps: [
          { id: 'partner', name: 'Partner IdP', issuer: upstreamIssuer, clientId: UPSTREAM_CLIENT, clientSecretEnv: SECRET_ENV },
          { id: 'retired', name: 'Retired IdP', enabled: false, issuer: upstreamIssuer, clientId: UPSTREAM_CLIENT, clientSecretEnv: SECRET_ENV },
          { id: 'dead', name: 'Unreachable IdP', issuer: `http://127.0.0.1:${deadPort}/t/nowhere`, clientId: 'nobody' },
          { id: 'rogue', name: 'Rogue IdP', issuer: rogue.issuer, clientId: 'castellan' },
        ],
      },
    });
    castellan.running.tenants.invalidate('demo');
  });
  afterAll(async () => {
    delete process.env[SECRET_ENV];
    await new Promise((resolve) => rogue?.server.close(resolve));
    await castellan?.stop();
  });

  it('signs in through the upstream, links the identity to a new local user, and reuses the link next time', async () => {
    const browser = newBrowser();
    const { interaction, html, verifier } = await openLoginPage(browser);
    // The login page offers the enabled IdPs, not the disabled one, next to the password form.
    expect(html).toContain('Sign in with Partner IdP');
    expect(html).toContain('Sign in with Unreachable IdP');
    expect(html).not.toContain('Retired IdP');
    expect(html).toContain('name="password"');

    const redirect = await chooseUpstream(browser, interaction);
    expect(redirect.status).toBe(303);
    const upstreamAuthorization = new URL(locationOf(redirect, interaction));
    expect(upstreamAuthorization.href.startsWith(`${upstreamIssuer}/auth?`)).toBe(true);
    const request = upstreamAuthorization.searchParams;
    expect(Object.fromEntries(request)).toMatchObject({
      client_id: UPSTREAM_CLIENT, response_type: 'code', redirect_uri: callbackUri, scope: 'openid email profile', code_challenge_method: 'S256',
    });
    expect(request.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(request.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(request.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(request.get('prompt')).toBeNull();
    // The per-attempt secrets stay on the server: no cookie carries them.
    expect(redirect.headers.getSetCookie()).toEqual([]);

    const callback = await upstreamSignIn(browser, upstreamAuthorization.href, 'alice');
    const answer = new URL(callback).searchParams;
    expect(answer.get('state')).toBe(request.get('state'));
    expect(answer.get('iss')).toBe(upstreamIssuer); // RFC 9207
    const codes: string[] = [];
    const tokens = await finishDownstream(browser, callback, verifier, codes);

    const idToken = decodeJwt(String(tokens.id_token));
    const link = await castellan.running.storage.upstreamLinks.find('demo', upstreamIssuer, people.alice.id);
    expect(link).toMatchObject({ tenant: 'demo', issuer: upstreamIssuer, subject: people.alice.id, idp: 'partner' });
    expect(idToken.sub).toBe(link?.userId);
    expect(idToken.sub).not.toBe(people.alice.id); // a local user of its own, not the upstream's subject
    // RFC 8176 `fed`: the relying party sees the sign-in was federated.
    expect(idToken.amr).toEqual(['fed']);
    expect(codes).toHaveLength(1);
    // The new local user: no password, the upstream's profile claims.
    const user = await castellan.running.storage.users.findById('demo', String(idToken.sub));
    expect(user).toMatchObject({ login: `partner:${people.alice.id}`, claims: { name: 'Alice Upstream', email: 'alice@partner.example', email_verified: true } });
    expect(await castellan.running.storage.users.verifyPassword('demo', `partner:${people.alice.id}`, people.alice.password)).toBeUndefined();
    const userinfo = await fetch(`${castellan.issuer}/me`, { headers: { authorization: `Bearer ${String(tokens.access_token)}` } });
    expect(await userinfo.json()).toMatchObject({ sub: idToken.sub, email: 'alice@partner.example', name: 'Alice Upstream' });

    // A second sign-in, in another browser: the same link, the same local user.
    const again = await atCallback('alice');
    const secondTokens = await finishDownstream(again.browser, again.callback, again.verifier);
    expect(decodeJwt(String(secondTokens.id_token)).sub).toBe(idToken.sub);
  });

  it('asks the upstream for a fresh sign-in when the client asked for one (prompt=login)', async () => {
    const browser = newBrowser();
    const { interaction } = await openLoginPage(browser, { prompt: 'login' });
    const redirect = await chooseUpstream(browser, interaction);
    expect(new URL(locationOf(redirect, interaction)).searchParams.get('prompt')).toBe('login');
  });

  it('never links to an existing local account by e-mail address', async () => {
    // A local user with carol's address exists before carol's first federated sign-in.
    const local = await castellan.running.storage.users.create({
      tenant: 'demo', login: 'carol-local', password: randomBytes(12).toString('base64url'), claims: { email: 'carol@partner.example', email_verified: true },
    });
    const { browser, callback, verifier } = await atCallback('carol');
    const tokens = await finishDownstream(browser, callback, verifier);
    const sub = decodeJwt(String(tokens.id_token)).sub;
    expect(sub).not.toBe(local.id);
    expect((await castellan.running.storage.upstreamLinks.find('demo', upstreamIssuer, people.carol.id))?.userId).toBe(sub);
  });

  it('links once when two first sign-ins of the same upstream identity arrive together', async () => {
    const [first, second] = await Promise.all([atCallback('bob'), atCallback('bob')]);
    if (!first || !second) throw new Error('unreachable');
    const [a, b] = await Promise.all([first.browser.get(first.callback), second.browser.get(second.callback)]);
    expect([a.status, b.status]).toEqual([303, 303]);
    const [tokensA, tokensB] = await Promise.all([
      finishDownstream(first.browser, locationOf(a, first.callback), first.verifier),
      finishDownstream(second.browser, locationOf(b, second.callback), second.verifier),
    ]);
    const subA = decodeJwt(String(tokensA.id_token)).sub;
    expect(decodeJwt(String(tokensB.id_token)).sub).toBe(subA);
    expect((await castellan.running.storage.upstreamLinks.find('demo', upstreamIssuer, people.bob.id))?.userId).toBe(subA);
  });

  it('the link store lets exactly one of 20 concurrent first links win, on FerretDB', async () => {
    const subject = `race-${randomBytes(6).toString('hex')}`;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      castellan.running.storage.upstreamLinks.link({ tenant: 'demo', issuer: upstreamIssuer, subject, userId: `user-${i}`, idp: 'partner' })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const winner = results.find((r) => r.created)?.link.userId;
    expect(new Set(results.map((r) => r.link.userId))).toEqual(new Set([winner]));
    expect((await castellan.running.storage.upstreamLinks.find('demo', upstreamIssuer, subject))?.userId).toBe(winner);
  });

  it('refuses a missing, unknown, forged or malformed state with a 400 and no redirect', async () => {
    const { browser, callback, verifier } = await atCallback('alice');
    const answer = new URL(callback).searchParams;
    const withParams = (params: Record<string, string>) => `${callbackUri}?${new URLSearchParams(params)}`;

    await expectOAuthError(await browser.get(withParams({ code: answer.get('code') ?? '', iss: upstreamIssuer })), 400, /missing state/);
    await expectOAuthError(await browser.get(withParams({ error: 'access_denied' })), 400, /missing state/);
    await expectOAuthError(await browser.get(withParams({ code: 'x', state: randomBytes(32).toString('base64url') })), 400, /unknown or expired state/);
    await expectOAuthError(await browser.get(withParams({ code: 'x', state: '<script>' })), 400, /invalid state/);
    await expectOAuthError(await browser.get(`${callbackUri}?${answer}&state=${answer.get('state')}`), 400, /invalid state/);
    const post = await fetch(callback, { method: 'POST' });
    expect(post.status).toBe(405);

    // None of that used the real attempt up: the genuine callback still completes.
    const tokens = await finishDownstream(browser, callback, verifier);
    expect(decodeJwt(String(tokens.id_token)).sub).toBeTruthy();
  });

  it('consumes the state once: a replayed or doubled callback is refused', async () => {
    const { browser, callback, verifier } = await atCallback('alice');
    const [a, b] = await Promise.all([browser.get(callback), browser.get(callback)]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([303, 400]);
    const [won, lost] = a.status === 303 ? [a, b] : [b, a];
    await expectOAuthError(lost, 400, /used already/);
    // Later again, after the first has been answered: still refused.
    await expectOAuthError(await browser.get(callback), 400, /used already/);
    await finishDownstream(browser, locationOf(won, callback), verifier);
  });

  it('binds the state to its interaction: another browser cannot complete it, nor can a browser without one', async () => {
    const victim = await atCallback('alice');
    // An attacker's browser, in a sign-in of its own, is handed the victim's callback (login CSRF in reverse).
    const attacker = newBrowser();
    await openLoginPage(attacker);
    await expectOAuthError(await attacker.get(victim.callback), 400, /another sign-in/);
    // A browser with no interaction at all: oidc-provider finds no interaction session.
    const stranger = newBrowser();
    const strangerAnswer = await stranger.get(victim.callback);
    expect(strangerAnswer.status).toBe(400);
    expect(strangerAnswer.headers.get('location')).toBeNull();
    // The attempt was not burnt by either: its own browser completes it.
    const tokens = await finishDownstream(victim.browser, victim.callback, victim.verifier);
    expect(decodeJwt(String(tokens.id_token)).sub).toBeTruthy();
  });

  it('checks the RFC 9207 iss of the response: a callback naming another issuer is refused', async () => {
    const { browser, callback } = await atCallback('alice');
    const tampered = new URL(callback);
    tampered.searchParams.set('iss', `${castellan.baseUrl}/t/demo`);
    await expectOAuthError(await browser.get(tampered.href), 400, /failed validation/);
    // The attempt is spent: the untampered response cannot be used after it either.
    await expectOAuthError(await browser.get(callback), 400, /used already/);
  });

  it('ends the downstream request with access_denied when the person cancels at the upstream', async () => {
    const browser = newBrowser();
    const { interaction } = await openLoginPage(browser);
    const redirect = await chooseUpstream(browser, interaction);
    const upstreamEntry = await browser.get(locationOf(redirect, interaction));
    const upstreamInteraction = locationOf(upstreamEntry, upstreamIssuer);
    expect(upstreamInteraction).toContain('/t/upstream/interaction/');
    const loginPage = await browser.get(upstreamInteraction);
    expect(await loginPage.text()).toContain('Sign in to Partner IdP');
    // Cancel on the upstream's login page.
    let response = await browser.postForm(`${upstreamInteraction}/abort`, {});
    let url = locationOf(response, upstreamInteraction);
    while (!url.startsWith(callbackUri)) url = locationOf(await browser.get(url), url);
    const answer = new URL(url).searchParams;
    expect(answer.get('error')).toBe('access_denied');

    response = await browser.get(url);
    expect(response.status).toBe(303);
    const downstream = await followAuthorization(browser, locationOf(response, url), REDIRECT, 'unused', 'unused');
    expect(Object.fromEntries(downstream)).toMatchObject({ error: 'access_denied', state: 'downstream-state' });
    expect(downstream.get('error_description')).toContain('Partner IdP');
  });

  it('refuses a disabled or unknown IdP id, and shows a clear page when the upstream is unreachable', async () => {
    const browser = newBrowser();
    const { interaction } = await openLoginPage(browser);
    for (const idp of ['retired', 'nope', '']) {
      await expectOAuthError(await chooseUpstream(browser, interaction, idp), 400, /unknown or disabled identity provider/);
    }
    const dead = await chooseUpstream(browser, interaction, 'dead');
    expect(dead.status).toBe(503);
    expect(dead.headers.get('content-type')).toContain('text/html');
    const page = await dead.text();
    expect(page).toContain('Signing in with Unreachable IdP did not work: it cannot be reached right now');
    // The page is the login page again: the password still works in the same interaction.
    expect(page).toContain('name="password"');
    const params = await followAuthorization(browser, interaction, REDIRECT, 'demo', castellan.userPassword);
    expect(params.get('code')).toBeTruthy();
  });
  describe('id_token checks, against an upstream that misbehaves', () => {
    /** Starts a sign-in with the rogue IdP; returns the callback its answer would come to. */
    async function rogueCallback(make: IdTokenMaker): Promise<{ browser: Browser; callback: string }> {
      const browser = newBrowser();
      const { interaction } = await openLoginPage(browser);
      const request = new URL(locationOf(await chooseUpstream(browser, interaction, 'rogue'), interaction)).searchParams;
      expect(request.get('code_challenge_method')).toBe('S256');
      rogue.answer.nonce = request.get('nonce') ?? '';
      rogue.answer.make = make;
      const answer = new URLSearchParams({ code: 'rogue-code', state: request.get('state') ?? '', iss: rogue.issuer });
      return { browser, callback: `${callbackUri}?${answer}` };
    }

    const idToken = (claims: Record<string, unknown>, key: CryptoKey, kid = 'rogue-1') =>
      new SignJWT({ sub: 'rogue-user', nonce: rogue.answer.nonce, ...claims })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setIssuer(String(claims.iss ?? rogue.issuer))
        .setAudience(String(claims.aud ?? 'castellan'))
        .setIssuedAt()
        .setExpirationTime(typeof claims.exp === 'number' ? claims.exp : '5m')
        .sign(key);

    it('accepts a well-formed answer (the rogue IdP itself is sound)', async () => {
      const { browser, callback } = await rogueCallback((_nonce, keys) => idToken({}, keys.signing));
      const response = await browser.get(callback);
      expect(response.status).toBe(303);
      expect(response.headers.get('location')).toMatch(/\/t\/demo\/auth\//);
      expect(await castellan.running.storage.upstreamLinks.find('demo', rogue.issuer, 'rogue-user')).toMatchObject({ idp: 'rogue' });
    });

    const refusals: Array<[string, IdTokenMaker]> = [
      ['another nonce', (_nonce, keys) => idToken({ nonce: 'not-the-nonce' }, keys.signing)],
      ['no nonce', async (_nonce, keys) => new SignJWT({ sub: 'rogue-user' }).setProtectedHeader({ alg: 'RS256', kid: 'rogue-1' })
        .setIssuer(rogue.issuer).setAudience('castellan').setIssuedAt().setExpirationTime('5m').sign(keys.signing)],
      ['another audience', (_nonce, keys) => idToken({ aud: 'someone-else' }, keys.signing)],
      ['another issuer', (_nonce, keys) => idToken({ iss: 'https://elsewhere.example' }, keys.signing)],
      ['an expired token', (_nonce, keys) => idToken({ exp: Math.floor(Date.now() / 1000) - 600 }, keys.signing)],
      ['a signature by another key under the published kid', (_nonce, keys) => idToken({}, keys.other)],
      ['a key the upstream does not publish', (_nonce, keys) => idToken({}, keys.other, 'unknown-kid')],
    ];
    for (const [name, make] of refusals) {
      it(`refuses an id_token with ${name}: 400, no redirect, no link`, async () => {
        const before = await castellan.running.storage.upstreamLinks.find('demo', rogue.issuer, 'rogue-user');
        const { browser, callback } = await rogueCallback(make);
        await expectOAuthError(await browser.get(callback), 400, /failed validation/);
        expect(await castellan.running.storage.upstreamLinks.find('demo', rogue.issuer, 'rogue-user')).toEqual(before);
      });
    }

    it('shows the login page again when the upstream token endpoint refuses the code', async () => {
      const { browser, callback } = await rogueCallback(async () => ({ error: 'invalid_grant' }));
      const response = await browser.get(callback);
      expect(response.status).toBe(502);
      expect(await response.text()).toContain('Signing in with Rogue IdP did not work');
    });
  });
});
