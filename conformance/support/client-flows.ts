import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { ResponseBodyError, WWWAuthenticateChallengeError } from 'oauth4webapi';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchBrowser, startTestClientSite, type TestClientSite } from '../../test/support/browser.ts';
import { startTestCastellan, type TestCastellan } from '../../test/support/castellan.ts';

/*
 * What the openid-client and oauth4webapi suites share: one Castellan on the production
 * stores (FerretDB + Redis) with the demo tenant as seeded, one headless Chromium that plays
 * the person (login, consent, the device page), and the client's own web site on a loopback
 * port where the browser lands with the authorization response. The libraries build every
 * request and check every response; the browser only does what a person would.
 */

/** The demo tenant's public native client (PKCE, device grant; loopback redirects on any port). */
export const AGENT = 'demo-agent';
/** The demo tenant's confidential service (client_credentials, token exchange; client_secret_basic). */
export const SERVICE = 'demo-service';
/** The demo resource `demo-service` may exchange a user's token for (README, the demo tenant). */
export const DOWNSTREAM = 'http://localhost:3004/api';
/** The demo notes MCP server: JWT access tokens, scopes notes:read notes:write. */
export const NOTES = 'http://localhost:3001/mcp';
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/**
 * The OAuth error code (RFC 6749 §5.2) a library call was refused with, or undefined when it
 * succeeded. Both libraries throw oauth4webapi's errors (openid-client re-exports them): a
 * ResponseBodyError for an error body, a WWWAuthenticateChallengeError when the answer (a 401
 * invalid_client) also carries a challenge; the body of the latter is still unread.
 */
export async function oauthError(call: Promise<unknown>): Promise<string | undefined> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ResponseBodyError) return err.error;
    if (err instanceof WWWAuthenticateChallengeError) {
      const body = (await err.response.json()) as { error?: unknown };
      return typeof body.error === 'string' ? body.error : err.cause[0]?.parameters.error;
    }
    throw err;
  }
  return undefined;
}

/** A confidential web client (client_secret_basic) configured by the operator for these suites. */
export interface WebClient {
  clientId: string;
  clientSecret: string;
}

/** An M2M client that authenticates with private_key_jwt (RFC 7523 §2.2), its key registered as `jwks`. */
export interface KeyClient {
  clientId: string;
  privateKey: CryptoKey;
}

export interface ClientFlowsWorld {
  castellan: TestCastellan;
  /** The tenant's issuer identifier, http://localhost:<port>/t/demo. */
  issuer: URL;
  /** The client's redirect URI: http://127.0.0.1:<port>/callback (loopback, so demo-agent may use it). */
  redirectUri: string;
  web: WebClient;
  keyClient: KeyClient;
  /** A fresh browser session (its own cookies), closed by `close()`. */
  newPage(): Promise<Page>;
  /**
   * As the person: opens the authorization URL, signs in as the demo user when asked, allows
   * on the consent page when asked, and returns the URL the browser landed on at the client.
   */
  authorizeInBrowser(authorizationUrl: URL | string, page?: Page): Promise<URL>;
  /** As the person: opens the device's verification_uri_complete, confirms, signs in and allows. */
  approveDeviceInBrowser(verificationUriComplete: string): Promise<void>;
  close(): Promise<void>;
}

/** Castellan (mongo+redis, demo tenant), Chromium and the client's site; `name` names the stores. */
export async function startClientFlowsWorld(name: string, clientName: string): Promise<ClientFlowsWorld> {
  const site: TestClientSite = await startTestClientSite();
  const [castellan, browser] = await Promise.all([
    startTestCastellan('mongo+redis', name),
    launchBrowser((line) => process.stderr.write(`[chromium] ${line}\n`)),
  ]);
  const redirectUri = `${site.origin}/callback`;

  // The operator's clients for these suites, as test/integration does: a confidential web app
  // (code flow + refresh) and an M2M worker with a registered public key.
  const clients = castellan.running.storage.modelStores('demo').durable;
  const web: WebClient = { clientId: `${name}-web`, clientSecret: randomBytes(32).toString('base64url') };
  await clients.upsert('Client', web.clientId, {
    client_id: web.clientId,
    client_secret: web.clientSecret,
    client_name: `${clientName} web app`,
    application_type: 'web',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: 'client_secret_basic',
  });
  const pair = await generateKeyPair('ES256', { extractable: true });
  const keyClient: KeyClient = { clientId: `${name}-worker`, privateKey: pair.privateKey };
  await clients.upsert('Client', keyClient.clientId, {
    client_id: keyClient.clientId,
    client_name: `${clientName} worker`,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'ES256', use: 'sig' }] },
  });
  castellan.running.tenants.invalidate('demo');

  const contexts: BrowserContext[] = [];
  const newPage = async (): Promise<Page> => {
    const context = await browser.newContext();
    contexts.push(context);
    // Generous: the conformance run shares the machine with the other suites.
    context.setDefaultTimeout(15_000);
    return context.newPage();
  };

  const atClient = (url: URL) => url.origin === site.origin && url.pathname === '/callback';

  async function signIn(page: Page): Promise<void> {
    await page.getByLabel('Username').fill('demo');
    await page.getByLabel('Password').fill(castellan.userPassword);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  async function authorizeInBrowser(authorizationUrl: URL | string, given?: Page): Promise<URL> {
    const page = given ?? (await newPage());
    await page.goto(String(authorizationUrl));
    const username = page.getByLabel('Username');
    const allow = page.getByRole('button', { name: 'Allow' });
    const landed = page.getByRole('heading', { name: 'Test client', level: 1 });
    // Whatever comes first: the login page, the consent page, or straight back at the client.
    await username.or(allow).or(landed).waitFor();
    if (await username.isVisible()) {
      await signIn(page);
      await allow.or(landed).waitFor();
    }
    if (await allow.isVisible()) await allow.click();
    await page.waitForURL((url) => atClient(url));
    await landed.waitFor();
    return new URL(page.url());
  }

  async function approveDeviceInBrowser(verificationUriComplete: string): Promise<void> {
    const page = await newPage();
    // verification_uri_complete carries the code: the page asks only to confirm the device.
    await page.goto(verificationUriComplete);
    await page.getByRole('button', { name: 'Yes, continue' }).click();
    const username = page.getByLabel('Username');
    const allow = page.getByRole('button', { name: 'Allow' });
    await username.or(allow).waitFor();
    if (await username.isVisible()) await signIn(page);
    await allow.click();
    await page.getByRole('heading', { name: 'Device connected', level: 1 }).waitFor();
  }

  return {
    castellan,
    issuer: new URL(castellan.issuer),
    redirectUri,
    web,
    keyClient,
    newPage,
    authorizeInBrowser,
    approveDeviceInBrowser,
    async close() {
      await Promise.allSettled(contexts.splice(0).map((context) => context.close()));
      await Promise.allSettled([browser.close(), site.close()]);
      await castellan.stop();
    },
  };
}
