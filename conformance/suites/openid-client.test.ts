import * as client from 'openid-client';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, expect } from 'vitest';
import {
  ACCESS_TOKEN_TYPE, AGENT, DOWNSTREAM, NOTES, oauthError, SERVICE, TOKEN_EXCHANGE_GRANT,
  startClientFlowsWorld, type ClientFlowsWorld,
} from '../support/client-flows.ts';
import { conformanceSuite } from '../support/scenario.ts';

/*
 * openid-client v6 (panva), as a relying party would use it, against Castellan on FerretDB +
 * Redis with the demo tenant: the library discovers the issuer, builds every request and
 * validates every response (id_token signature with enableNonRepudiationChecks, iss, aud,
 * nonce, state, RFC 9207 iss in the authorization response, PKCE); a headless Chromium does
 * the person's part (login, consent, the device page). The only concession: plain http on
 * loopback (allowInsecureRequests), as the test server has no TLS.
 */

const SUITE = 'openid-client';

let world: ClientFlowsWorld;

/** What every Configuration gets: http on loopback, and id_token / JWT signature checks. */
const execute = [client.allowInsecureRequests, client.enableNonRepudiationChecks];

function configFor(clientId: string, auth: client.ClientAuth, metadata: Partial<client.ClientMetadata> = {}): Promise<client.Configuration> {
  return client.discovery(world.issuer, clientId, metadata, auth, { execute });
}
const agent = () => configFor(AGENT, client.None());
const service = () => configFor(SERVICE, client.ClientSecretBasic(world.castellan.clientSecret));

interface CodeFlowResult {
  tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
  nonce: string;
}

/** Auth code + PKCE (S256) + nonce + state; the browser signs in and allows; the library redeems. */
async function codeFlow(config: client.Configuration, params: Record<string, string>, usePar = false): Promise<CodeFlowResult> {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const request = {
    redirect_uri: world.redirectUri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    ...params,
  };
  const url = usePar ? await client.buildAuthorizationUrlWithPAR(config, request) : client.buildAuthorizationUrl(config, request);
  const landed = await world.authorizeInBrowser(url);
  const tokens = await client.authorizationCodeGrant(config, landed, {
    pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true,
  });
  return { tokens, nonce };
}

/** The demo agent's sign-in (openid profile email), shared by the code flow and userinfo checks. */
let agentSignIn: Promise<CodeFlowResult> | undefined;
const signedInAgent = async () => {
  agentSignIn ??= agent().then((config) => codeFlow(config, { scope: 'openid profile email' }));
  return agentSignIn;
};

beforeAll(async () => {
  world = await startClientFlowsWorld('oidclient', 'openid-client');
});
afterAll(async () => world?.close());

conformanceSuite(SUITE, (scenario) => {
  scenario('discovery', async () => {
    const config = await agent();
    const metadata = config.serverMetadata();
    expect(metadata.issuer).toBe(world.castellan.issuer);
    for (const endpoint of [
      'authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint', 'registration_endpoint',
      'introspection_endpoint', 'revocation_endpoint', 'device_authorization_endpoint',
    ] as const) {
      expect(metadata[endpoint], endpoint).toMatch(new RegExp(`^${world.castellan.issuer}/`));
    }
    expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
    expect(metadata.response_types_supported).toEqual(['code']);
    expect(metadata.authorization_response_iss_parameter_supported).toBe(true);
    expect(config.clientMetadata().client_id).toBe(AGENT);
  });

  scenario('authorization code + PKCE + nonce (id_token validated)', async () => {
    const { tokens, nonce } = await signedInAgent();
    expect(tokens.token_type).toBe('bearer');
    const claims = tokens.claims();
    expect(claims).toMatchObject({ iss: world.castellan.issuer, aud: AGENT, nonce, sub: expect.any(String) });
    expect(tokens.scope?.split(' ').sort()).toEqual(['email', 'openid', 'profile']);
  });

  scenario('PKCE is required (no code_challenge: invalid_request; wrong code_verifier: invalid_grant)', async () => {
    const config = await agent();
    const page = await world.newPage();
    // Without a code_challenge the authorization endpoint answers the client with an error.
    const state = client.randomState();
    const refused = await world.authorizeInBrowser(client.buildAuthorizationUrl(config, {
      redirect_uri: world.redirectUri, scope: 'openid', state,
    }), page);
    const error = await client.authorizationCodeGrant(config, refused, { expectedState: state }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(client.AuthorizationResponseError);
    expect((error as client.AuthorizationResponseError).error).toBe('invalid_request');

    // With one, the code is not redeemed for another verifier.
    const verifier = client.randomPKCECodeVerifier();
    const other = client.randomState();
    const landed = await world.authorizeInBrowser(client.buildAuthorizationUrl(config, {
      redirect_uri: world.redirectUri, scope: 'openid', state: other,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    }), page);
    expect(await oauthError(client.authorizationCodeGrant(config, landed, {
      expectedState: other, pkceCodeVerifier: client.randomPKCECodeVerifier(),
    }))).toBe('invalid_grant');
  });

  scenario('userinfo', async () => {
    const config = await agent();
    const { tokens } = await signedInAgent();
    const sub = tokens.claims()?.sub ?? '';
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub);
    expect(userinfo).toMatchObject({ sub, name: 'Demo User', email: 'demo@example.com' });
    // The library refuses userinfo about someone else (the sub check).
    await expect(client.fetchUserInfo(config, tokens.access_token, `${sub}-other`)).rejects.toThrow();
  });

  scenario('refresh token rotation (the old refresh token is then refused)', async () => {
    const config = await configFor(world.web.clientId, client.ClientSecretBasic(world.web.clientSecret));
    const { tokens } = await codeFlow(config, { scope: 'openid offline_access', prompt: 'consent' });
    const first = tokens.refresh_token;
    expect(first).toEqual(expect.any(String));
    const sub = tokens.claims()?.sub;

    const refreshed = await client.refreshTokenGrant(config, first ?? '');
    expect(refreshed.access_token).toEqual(expect.any(String));
    expect(refreshed.refresh_token).toEqual(expect.any(String));
    expect(refreshed.refresh_token).not.toBe(first);
    // A refreshed id_token is about the same person (the library checks iss, aud and signature).
    if (refreshed.id_token) expect(refreshed.claims()?.sub).toBe(sub);

    expect(await oauthError(client.refreshTokenGrant(config, first ?? ''))).toBe('invalid_grant');
    // Reuse of a rotated token revokes the grant: the new refresh token is gone too.
    expect(await oauthError(client.refreshTokenGrant(config, refreshed.refresh_token ?? ''))).toBe('invalid_grant');
  });

  scenario('client_credentials with client_secret_basic', async () => {
    const config = await service();
    const tokens = await client.clientCredentialsGrant(config, { resource: NOTES, scope: 'notes:read' });
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.scope).toBe('notes:read');
    const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri ?? ''));
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, { issuer: world.castellan.issuer, audience: NOTES });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload).toMatchObject({ client_id: SERVICE, scope: 'notes:read' });
    // A wrong secret is refused.
    const wrong = await configFor(SERVICE, client.ClientSecretBasic('not-the-secret'));
    expect(await oauthError(client.clientCredentialsGrant(wrong, { resource: NOTES }))).toBe('invalid_client');
  });

  scenario('client_credentials with private_key_jwt', async () => {
    const config = await configFor(world.keyClient.clientId, client.PrivateKeyJwt(world.keyClient.privateKey), {
      token_endpoint_auth_method: 'private_key_jwt',
    });
    const tokens = await client.clientCredentialsGrant(config, { resource: NOTES, scope: 'notes:read' });
    expect(decodeJwt(tokens.access_token)).toMatchObject({ client_id: world.keyClient.clientId, aud: NOTES, scope: 'notes:read' });
    // Each assertion is fresh (new jti): a second grant works as well.
    const again = await client.clientCredentialsGrant(config, { resource: NOTES, scope: 'notes:read' });
    expect(again.access_token).not.toBe(tokens.access_token);
  });

  scenario('dynamic client registration, then a code flow with the registered client', async () => {
    const registered = await client.dynamicClientRegistration(world.issuer, {
      client_name: 'openid-client conformance',
      redirect_uris: [world.redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }, undefined, { execute });
    const metadata = registered.clientMetadata();
    expect(metadata.client_id).toEqual(expect.any(String));
    expect(metadata.client_secret).toEqual(expect.any(String));
    expect(metadata).toMatchObject({ registration_client_uri: expect.any(String), registration_access_token: expect.any(String) });

    const { tokens } = await codeFlow(registered, { scope: 'openid' });
    expect(tokens.claims()).toMatchObject({ aud: metadata.client_id, iss: world.castellan.issuer });
  });

  scenario('device authorization grant (approved in the browser)', async () => {
    const config = await agent();
    const authorization = await client.initiateDeviceAuthorization(config, { scope: 'openid notes:read', resource: NOTES });
    expect(authorization.verification_uri).toBe(`${world.castellan.issuer}/device`);
    expect(authorization.verification_uri_complete).toEqual(expect.any(String));
    // The device polls (the library keeps the interval) while the person approves.
    const [tokens] = await Promise.all([
      client.pollDeviceAuthorizationGrant(config, authorization),
      world.approveDeviceInBrowser(authorization.verification_uri_complete ?? ''),
    ]);
    expect(tokens.scope).toBe('notes:read');
    expect(decodeJwt(tokens.access_token)).toMatchObject({ aud: NOTES, client_id: AGENT });
    expect(tokens.claims()).toMatchObject({ aud: AGENT, iss: world.castellan.issuer });
  }, 60_000);

  scenario('token exchange (RFC 8693, act claim)', async () => {
    // The agent signs its user in and gets a token for the notes server…
    const { tokens: user } = await codeFlow(await agent(), { scope: 'openid notes:read', resource: NOTES });
    const sub = user.claims()?.sub;
    // …which demo-service, acting for that user, exchanges for a token for the downstream API.
    const config = await service();
    const exchanged = await client.genericGrantRequest(config, TOKEN_EXCHANGE_GRANT, {
      subject_token: user.access_token,
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: DOWNSTREAM,
      scope: 'notes:read',
    });
    expect(exchanged).toMatchObject({ issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'bearer', scope: 'notes:read' });
    expect(exchanged.refresh_token).toBeUndefined();
    const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri ?? ''));
    const { payload } = await jwtVerify(exchanged.access_token, jwks, { issuer: world.castellan.issuer, audience: DOWNSTREAM });
    expect(payload).toMatchObject({ sub, client_id: SERVICE, act: { sub: SERVICE, act: { sub: AGENT } } });
  });

  scenario('introspection', async () => {
    const config = await service();
    const { access_token } = await client.clientCredentialsGrant(config);
    const answer = await client.tokenIntrospection(config, access_token);
    expect(answer).toMatchObject({ active: true, client_id: SERVICE, iss: world.castellan.issuer, token_type: 'Bearer' });
    expect(await client.tokenIntrospection(config, 'never-issued-token')).toEqual({ active: false });
  });

  scenario('revocation (then introspection says inactive)', async () => {
    const config = await service();
    const { access_token } = await client.clientCredentialsGrant(config);
    expect((await client.tokenIntrospection(config, access_token)).active).toBe(true);
    await client.tokenRevocation(config, access_token);
    expect(await client.tokenIntrospection(config, access_token)).toEqual({ active: false });
  });

  scenario('DPoP (RFC 9449)', async (ctx) => {
    const config = await service();
    const algs = config.serverMetadata().dpop_signing_alg_values_supported;
    if (!algs?.length) {
      ctx.skip('the AS metadata does not advertise dpop_signing_alg_values_supported (DPoP is off in Castellan)');
      return;
    }
    const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair(algs.includes('ES256') ? 'ES256' : algs[0]));
    const tokens = await client.clientCredentialsGrant(config, {}, { DPoP: dpop });
    expect(tokens.token_type).toBe('dpop');
    expect(await client.tokenIntrospection(config, tokens.access_token)).toMatchObject({ active: true, cnf: { jkt: expect.any(String) } });
  });

  scenario('pushed authorization request (RFC 9126)', async (ctx) => {
    const config = await configFor(world.web.clientId, client.ClientSecretBasic(world.web.clientSecret));
    if (!config.serverMetadata().pushed_authorization_request_endpoint) {
      ctx.skip('the AS metadata does not advertise pushed_authorization_request_endpoint');
      return;
    }
    const { tokens, nonce } = await codeFlow(config, { scope: 'openid' }, true);
    expect(tokens.claims()).toMatchObject({ aud: world.web.clientId, nonce });
  });
});
