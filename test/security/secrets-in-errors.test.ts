import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, codeRedemption, newBrowser, postToken, runCodeFlow } from '../support/oauth.ts';

/*
 * Secrets never in error responses (RFC 9700 §4.3 leakage; issue #11 item 9; RFC 6749 §5.2
 * error_description is for developers, not an echo): the test walks failures whose requests
 * carry a secret (a wrong or right password, client secrets, codes, verifiers, access and
 * refresh tokens, registration access tokens) and scans every error answer Castellan gave in
 * the run (status 4xx/5xx: body and WWW-Authenticate; redirects carrying error=: Location) for
 * every secret the run used. (Logs and audit events: security/secrets-in-logs.test.ts.)
 */
const REDIRECT = 'http://127.0.0.1:53682/callback';
const RESOURCE = 'http://localhost:3001/mcp';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

interface ErrorAnswer {
  url: string;
  status: number;
  text: string;
}

describe('secrets in error responses (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  const answers: ErrorAnswer[] = [];
  const realFetch = globalThis.fetch;

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_secrets_errors');
    const base = castellan.baseUrl;
    // Every answer from Castellan passes through here; the error ones are kept for the scan.
    globalThis.fetch = async (input, init) => {
      const response = await realFetch(input, init);
      const url = input instanceof Request ? input.url : String(input);
      if (!url.startsWith(base)) return response;
      const location = response.headers.get('location') ?? '';
      if (response.status >= 400 || /[?&#]error=/.test(location)) {
        const text = [response.headers.get('www-authenticate') ?? '', location, await response.clone().text()].join('\n');
        answers.push({ url, status: response.status, text });
      }
      return response;
    };
  });
  afterAll(async () => {
    globalThis.fetch = realFetch;
    await castellan?.stop();
  });

  const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${castellan.issuer}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });

  it('echoes none of the secrets a run sent into its error answers', async () => {
    const password = castellan.userPassword;
    const clientSecret = castellan.clientSecret;
    const service = basicAuth('demo-service', clientSecret);
    const seen = new Set<string>([password, clientSecret]);
    const secret = (value: string) => {
      seen.add(value);
      return value;
    };

    // Sign-in: a wrong password, and the right one posted with a forged CSRF token.
    const browser = newBrowser();
    const login = await browser.get(`${castellan.issuer}/auth?${new URLSearchParams({
      client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid',
      code_challenge: 'x'.repeat(43), code_challenge_method: 'S256', state: 's',
    })}`);
    const interaction = new URL(login.headers.get('location') ?? '', castellan.issuer).href;
    await browser.get(interaction);
    expect((await browser.postForm(`${interaction}/login`, { login: 'demo', password: secret('Wr0ng-but-secret-guess') })).status).toBe(400);
    expect((await browser.postForm(`${interaction}/login`, { login: 'demo', password, csrf: 'forged' })).status).toBe(403);
    // The account page's sign-in with a wrong password (where TOTP is not off it exists; demo: 404 is fine too).
    await browser.postForm(`${castellan.issuer}/account/security`, { action: 'sign-in', login: 'demo', password: secret('An0ther-secret-guess'), code: '' });

    // A code and its verifier, then failures around them.
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: REDIRECT, scope: 'openid offline_access notes:read',
      resource: RESOURCE, login: 'demo', password, extra: { prompt: 'consent' },
    });
    secret(flow.code);
    secret(flow.verifier);
    const redeem = (form: Record<string, string>, authorization?: string) => postToken(castellan.issuer, {
      ...codeRedemption(flow, 'demo-agent', REDIRECT), ...form,
    }, authorization);
    const tokens = await redeem({});
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const accessToken = secret(String(tokens.body.access_token));
    const refreshToken = secret(String(tokens.body.refresh_token));
    secret(String(tokens.body.id_token));

    // Refresh: by another client, then rotated and replayed.
    expect((await postToken(castellan.issuer, { grant_type: 'refresh_token', refresh_token: refreshToken }, service)).status).toBe(400);
    const rotated = await postToken(castellan.issuer, { grant_type: 'refresh_token', client_id: 'demo-agent', refresh_token: refreshToken });
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    secret(String(rotated.body.access_token));
    secret(String(rotated.body.refresh_token));
    // Presented again by another client (a replay by its own client within the retry grace gets the kept pair).
    const replayedRefresh = await postToken(castellan.issuer, { grant_type: 'refresh_token', refresh_token: refreshToken }, service);
    expect(replayedRefresh.status).toBe(400);

    // The code again: replayed, with a wrong verifier, another redirect_uri, at another client.
    expect((await redeem({})).status).toBe(400);
    expect((await redeem({ code_verifier: secret(`${flow.verifier.slice(0, -4)}abcd`) })).status).toBe(400);
    expect((await redeem({ redirect_uri: 'http://127.0.0.1:53682/other' })).status).toBe(400);
    expect((await redeem({ client_id: 'demo-service' }, basicAuth('demo-service', clientSecret))).status).toBe(400);

    // Client authentication failures carrying secrets, in every place a secret can be put.
    const wrongSecret = secret('not-the-client-secret-but-secret');
    expect((await postToken(castellan.issuer, { grant_type: 'client_credentials' }, basicAuth('demo-service', wrongSecret))).status).toBe(401);
    expect((await postToken(castellan.issuer, { grant_type: 'client_credentials', client_id: 'demo-service', client_secret: wrongSecret })).status).toBe(401);
    expect((await postToken(castellan.issuer, { grant_type: 'client_credentials', client_id: 'demo-service', client_secret: clientSecret }, service)).status).toBe(400);
    expect((await postToken(castellan.issuer, { grant_type: 'client_credentials' }, `Basic ${Buffer.from(`demo-service${clientSecret}`).toString('base64')}`)).status).toBe(400);
    expect((await postToken(castellan.issuer, { grant_type: 'client_credentials' }, `Bearer ${accessToken}`)).status).toBe(400);
    expect((await postToken(castellan.issuer, { grant_type: 'client_credentials', client_id: 'demo-agent', client_secret: clientSecret })).status).toBe(401);

    // Introspection and revocation of real tokens by the wrong credentials.
    for (const path of ['/token/introspection', '/token/revocation']) {
      expect((await post(path, { token: accessToken }, { authorization: basicAuth('demo-service', wrongSecret) })).status).toBe(401);
      expect((await post(path, { token: refreshToken, client_id: 'demo-service', client_secret: wrongSecret })).status).toBe(401);
    }
    // userinfo with a garbled token, and with a token that is not for it.
    expect((await fetch(`${castellan.issuer}/me`, { headers: { authorization: `Bearer ${accessToken}x` } })).status).toBe(401);
    expect((await fetch(`${castellan.issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status).toBeGreaterThanOrEqual(400);
    // Token exchange of a real subject token that demo-service may not exchange that way.
    const exchange = await postToken(castellan.issuer, {
      grant_type: TOKEN_EXCHANGE, subject_token: accessToken, subject_token_type: ACCESS_TOKEN_TYPE, resource: 'http://localhost:3002/api',
    }, service);
    expect(exchange.status).toBeGreaterThanOrEqual(400);

    // Registration: a registration access token used wrongly, and metadata carrying a secret.
    const registered = await post('/reg', {}, {});
    expect(registered.status).toBeGreaterThanOrEqual(400);
    const reg = await fetch(`${castellan.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'leaky', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'] }),
    });
    const client = (await reg.json()) as Record<string, unknown>;
    expect(reg.status, JSON.stringify(client)).toBe(201);
    const registrationToken = secret(String(client.registration_access_token));
    const configuration = String(client.registration_client_uri);
    expect((await fetch(configuration, { headers: { authorization: `Bearer ${registrationToken}x` } })).status).toBe(401);
    const otherClient = configuration.replace(String(client.client_id), 'demo-agent');
    expect((await fetch(otherClient, { headers: { authorization: `Bearer ${registrationToken}` } })).status).toBeGreaterThanOrEqual(400);
    const badUpdate = await fetch(configuration, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${registrationToken}` },
      body: JSON.stringify({ client_id: client.client_id, client_secret: secret('an-echoed-secret-that-is-wrong'), redirect_uris: ['not a uri'] }),
    });
    expect(badUpdate.status).toBeGreaterThanOrEqual(400);
    // A registration carrying a private key (its `d`) and a client_secret, with something else wrong.
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    secret(String(privateJwk.d));
    for (const body of [
      { client_name: 'leaky', grant_types: ['client_credentials'], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [privateJwk] } },
      { client_name: 'leaky', grant_types: ['client_credentials'], response_types: [], redirect_uris: ['not a uri'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [privateJwk] }, client_secret: secret('a-chosen-client-secret-value') },
    ]) {
      const badRegistration = await fetch(`${castellan.issuer}/reg`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` }, body: JSON.stringify(body),
      });
      expect(badRegistration.status, await badRegistration.clone().text()).toBeGreaterThanOrEqual(400);
    }

    // The scan had plenty to scan: errors of many kinds and statuses.
    expect(answers.length).toBeGreaterThanOrEqual(25);
    expect([...new Set(answers.map((a) => a.status))]).toEqual(expect.arrayContaining([400, 401, 403]));
    for (const value of seen) {
      expect(value.length).toBeGreaterThan(8);
      for (const answer of answers) {
        expect(answer.text.includes(value), `a secret (${value.slice(0, 4)}…) appears in the ${answer.status} answer of ${answer.url.replace(castellan.baseUrl, '')}`).toBe(false);
      }
    }
  });
});
