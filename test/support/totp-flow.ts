import { Secret } from 'otpauth';
import { expect } from 'vitest';
import { createTotpService, type TotpService } from '../../src/accounts/totp-service.ts';
import { timeStep, totpCodeAt } from '../../src/accounts/totp.ts';
import { createLocalKeyWrapper } from '../../src/keys/kms.ts';
import type { TestCastellan } from './castellan.ts';
import { newBrowser, pkcePair, type Browser } from './oauth.ts';

/*
 * What the TOTP tests at the HTTP level share: a user's "authenticator app", the factor
 * service the server uses (to enrol users directly), a native test client, and the walk
 * from /auth to the login page of a new interaction.
 */

/** A user's authenticator app: the secret read off the page, and the steps already used. */
export interface TotpApp { secret: Uint8Array; used: Set<number> }

/** The app fed the key as shown (base32, in groups separated by spaces). */
export function appFromSecret(shown: string): TotpApp {
  return { secret: Uint8Array.from(Secret.fromBase32(shown.replaceAll(' ', '')).bytes), used: new Set() };
}

/** The code of the current step, or of the next one (clock drift) if the current one was used. */
export function codeFrom(app: TotpApp): string {
  for (const delta of [0, 1]) {
    const step = timeStep(Date.now()) + delta;
    if (!app.used.has(step)) {
      app.used.add(step);
      return totpCodeAt(app.secret, step);
    }
  }
  throw new Error('no unused step in the window; the test is too fast for 30-second steps');
}

/** A 6-digit code that is none of the window's codes. */
export function wrongCode(app: TotpApp): string {
  const now = timeStep(Date.now());
  const valid = new Set([-2, -1, 0, 1, 2].map((d) => totpCodeAt(app.secret, now + d)));
  for (let n = 123_456; ; n += 1) if (!valid.has(String(n))) return String(n);
}

/** The same factor service the server uses (same KEK and stores), to enrol users directly. */
export function totpServiceOf(castellan: TestCastellan): TotpService {
  const { storage } = castellan.running;
  return createTotpService({
    accounts: storage.users, wrapper: createLocalKeyWrapper(castellan.env.CASTELLAN_KEY_ENCRYPTION_KEY ?? ''),
    stepMarks: storage.oneTimeMarks.shortLived, recoveryMarks: storage.oneTimeMarks.lasting,
  });
}

/** Enrols a user through the service, as self-service would; returns their app and recovery codes. */
export async function enrolDirectly(totp: TotpService, tenant: string, userId: string): Promise<{ app: TotpApp; recoveryCodes: string[] }> {
  const pending = await totp.begin(tenant, userId);
  const { secret } = await totp.reveal(tenant, userId, pending, 'x', 'y');
  const app = appFromSecret(secret);
  const recoveryCodes = await totp.confirm(tenant, userId, pending, codeFrom(app));
  if (!recoveryCodes) throw new Error('enrolment failed');
  return { app, recoveryCodes };
}

/**
 * A public native client (PKCE, authorization_code, any loopback redirect port) in `tenant`;
 * `extra` adds metadata such as a client_name.
 */
export async function upsertNativeClient(castellan: TestCastellan, tenant: string, clientId: string, extra: Record<string, unknown> = {}): Promise<void> {
  await castellan.running.storage.modelStores(tenant).durable.upsert('Client', clientId, {
    client_id: clientId, ...extra, application_type: 'native', token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: ['http://127.0.0.1/callback'],
  });
}

export interface LoginPage { browser: Browser; pageUrl: string; verifier: string; issuer: string }

/**
 * /auth (scope openid, PKCE S256) → the login page of a new interaction, checked to ask for
 * the password. `state` is sent only when given.
 */
export async function openLoginPage(castellan: TestCastellan, options: {
  tenant: string; client: string; redirectUri: string; state?: string; browser?: Browser;
}): Promise<LoginPage> {
  const browser = options.browser ?? newBrowser();
  const issuer = `${castellan.baseUrl}/t/${options.tenant}`;
  const { verifier, challenge } = pkcePair();
  const query = new URLSearchParams({
    client_id: options.client, response_type: 'code', redirect_uri: options.redirectUri, scope: 'openid',
    ...(options.state === undefined ? {} : { state: options.state }),
    code_challenge: challenge, code_challenge_method: 'S256',
  });
  const auth = await browser.get(`${issuer}/auth?${query}`);
  const pageUrl = new URL(auth.headers.get('location') ?? '', issuer).href;
  expect(await (await browser.get(pageUrl)).text()).toContain('name="password"');
  return { browser, pageUrl, verifier, issuer };
}
