import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { basicAuth, locationOf, pkcePair, type Browser } from '../../test/support/oauth.ts';

/*
 * A relying party as the OpenID Foundation's OP tests play it, with plain fetch and jose: a
 * client registered through RFC 7591, authorization requests it builds, a scripted person who
 * signs in and consents (recording which pages were shown), the code exchange with client
 * authentication, and the ID token and userinfo checks the suite makes.
 */

export type ClientAuth = 'client_secret_basic' | 'client_secret_post';

export interface RpClient {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  auth: ClientAuth;
}

/** Registers a confidential web client (https redirect URI, code + refresh_token grants) through DCR. */
export async function registerRp(issuer: string, auth: ClientAuth, name: string, extra: Record<string, unknown> = {}): Promise<RpClient> {
  const redirectUri = `https://rp.conformance.test/${name}/callback`;
  const response = await fetch(`${issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: `OIDF basic RP ${name}`,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: auth,
      ...extra,
    }),
  });
  const body = (await response.json()) as Record<string, unknown>;
  if (response.status !== 201 || typeof body.client_id !== 'string' || typeof body.client_secret !== 'string') {
    throw new Error(`registration failed: ${response.status} ${JSON.stringify(body)}`);
  }
  return { issuer, clientId: body.client_id, clientSecret: body.client_secret, redirectUri, auth };
}

export interface AuthorizationRequest {
  url: string;
  state: string;
  nonce: string | undefined;
  verifier: string;
}

/**
 * An authorization request of the basic plan: response_type=code, scope, state, nonce (unless
 * `nonce: false`), and PKCE S256 — which the plan sends only in one module, but Castellan
 * (OAuth 2.1) requires of every client. `params` adds or (undefined) removes parameters.
 */
export function authorizationRequest(
  client: RpClient,
  options: { scope?: string; nonce?: boolean; params?: Record<string, string | undefined> } = {},
): AuthorizationRequest {
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(12).toString('base64url');
  const nonce = options.nonce === false ? undefined : randomBytes(12).toString('base64url');
  const entries: Record<string, string | undefined> = {
    client_id: client.clientId,
    response_type: 'code',
    scope: options.scope ?? 'openid',
    redirect_uri: client.redirectUri,
    state,
    ...(nonce ? { nonce } : {}),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...options.params,
  };
  const query = new URLSearchParams(Object.entries(entries).filter((e): e is [string, string] => e[1] !== undefined));
  return { url: `${client.issuer}/auth?${query}`, state, nonce, verifier };
}

export interface Walk {
  /** The authorization response's parameters (at the client's redirect URI). */
  params: URLSearchParams;
  /** The pages the person saw, in order. */
  pages: Array<'login' | 'consent'>;
}

/**
 * Plays the person from an authorization URL to the redirect to the client: signs in when the
 * login page is shown, allows on the consent page. Records which pages were shown. Throws at
 * any other answer (an error page is not a redirect).
 */
export async function walk(browser: Browser, url: string, redirectUri: string, login: string, password: string): Promise<Walk> {
  const pages: Walk['pages'] = [];
  let next = url;
  for (let step = 0; step < 12; step += 1) {
    if (next.startsWith(redirectUri)) return { params: new URL(next).searchParams, pages };
    const response = await browser.get(next);
    if (response.status >= 300 && response.status < 400) {
      next = locationOf(response, next);
      continue;
    }
    const html = await response.text();
    if (response.status !== 200) throw new Error(`unexpected ${response.status} at ${next}: ${html.slice(0, 300)}`);
    const interaction = `${new URL(next).origin}${new URL(next).pathname}`;
    if (html.includes('name="password"')) {
      pages.push('login');
      next = locationOf(await browser.postForm(`${interaction}/login`, { login, password }), next);
    } else {
      pages.push('consent');
      next = locationOf(await browser.postForm(`${interaction}/confirm`, {}), next);
    }
  }
  throw new Error('authorization did not finish in 12 steps');
}

export interface TokenAnswer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** A token request with the client's authentication (client_secret_basic or client_secret_post). */
export async function tokenRequest(client: RpClient, form: Record<string, string>): Promise<TokenAnswer> {
  const body = new URLSearchParams(form);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (client.auth === 'client_secret_basic') headers.authorization = basicAuth(client.clientId, client.clientSecret);
  else {
    body.set('client_id', client.clientId);
    body.set('client_secret', client.clientSecret);
  }
  const response = await fetch(`${client.issuer}/token`, { method: 'POST', headers, body: body.toString() });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

export const exchangeCode = (client: RpClient, code: string, verifier: string) =>
  tokenRequest(client, { grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier });

/** OIDC Core §3.1.3.6: at_hash is the left half of the SHA-256 of the access token, base64url. */
export function atHash(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest().subarray(0, 16).toString('base64url');
}

/**
 * OIDC Core §3.1.3.7 ID token validation as the OIDF suite does it: signature with a JWKS key
 * named by kid, alg RS256 (the client's default), iss, aud = client_id (azp when several),
 * exp in the future, iat present, sub present, nonce equal to the request's (absent when none
 * was sent), at_hash matching when present. Returns the claims.
 */
export async function validateIdToken(
  client: RpClient,
  idToken: unknown,
  options: { nonce: string | undefined; accessToken?: string },
): Promise<JWTPayload> {
  if (typeof idToken !== 'string') throw new Error('no id_token in the token response');
  const header = decodeProtectedHeader(idToken);
  if (typeof header.kid !== 'string') throw new Error('the id_token header names no kid');
  if (header.alg !== 'RS256') throw new Error(`id_token alg ${String(header.alg)}, expected RS256`);
  const { payload } = await jwtVerify(idToken, createRemoteJWKSet(new URL(`${client.issuer}/jwks`)), {
    issuer: client.issuer,
    audience: client.clientId,
    algorithms: ['RS256'],
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
  });
  if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== client.clientId) throw new Error('several audiences without azp = client_id');
  if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 255) throw new Error('sub must be 1-255 characters');
  if (options.nonce === undefined) {
    if ('nonce' in payload) throw new Error('nonce in the id_token though none was sent');
  } else if (payload.nonce !== options.nonce) throw new Error(`nonce ${String(payload.nonce)} is not the request's`);
  if (options.accessToken !== undefined && 'at_hash' in payload && payload.at_hash !== atHash(options.accessToken)) {
    throw new Error('at_hash does not match the access token');
  }
  return payload;
}

/** Userinfo (OIDC Core §5.3) with the access token in the Authorization header (GET or POST) or in a form body (POST). */
export async function userinfo(
  issuer: string,
  accessToken: string,
  how: 'get' | 'post-header' | 'post-body' = 'get',
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const init: RequestInit = how === 'get'
    ? { headers: { authorization: `Bearer ${accessToken}` } }
    : how === 'post-header'
      ? { method: 'POST', headers: { authorization: `Bearer ${accessToken}` } }
      : { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ access_token: accessToken }).toString() };
  const response = await fetch(`${issuer}/me`, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}
