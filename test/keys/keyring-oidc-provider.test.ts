import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import Provider from 'oidc-provider';
import { afterEach, describe, expect, it } from 'vitest';

import { createKeyring } from '../../src/keys/keyring.ts';
import { createLocalKeyWrapper, generateKeyEncryptionKey } from '../../src/keys/kms.ts';
import { createMemorySigningKeyStore } from '../../src/keys/signing-key-store.memory.ts';
import { testClock } from './test-clock.ts';

const RESOURCE = 'https://api.example.test';

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A bare provider over `jwks` that issues ES256 JWT access tokens by client credentials. */
async function startProvider(jwks: { keys: JWK[] }): Promise<string> {
  server = createServer();
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    jwks,
    clients: [{
      client_id: 'svc',
      client_secret: 'a-long-enough-test-secret-value',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    }],
    features: {
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        getResourceServerInfo: () => ({
          scope: 'api',
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
  });
  server.on('request', provider.callback());
  return issuer;
}

async function clientCredentialsToken(issuer: string): Promise<string> {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from('svc:a-long-enough-test-secret-value').toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'api', resource: RESOURCE }),
  });
  const body = (await response.json()) as { access_token?: string };
  expect(response.status, JSON.stringify(body)).toBe(200);
  return body.access_token!;
}

describe('keyring output in oidc-provider', () => {
  it('signs only with the active key while publishing next and retired keys', async () => {
    const clock = testClock();
    const keyring = createKeyring({
      store: createMemorySigningKeyStore(),
      wrapper: createLocalKeyWrapper(generateKeyEncryptionKey()),
      now: clock.now,
    });
    const { ES256: first } = await keyring.ensureActiveKeys('acme');
    clock.advance(60);
    const { kid: second } = await keyring.rotate('acme', 'ES256');
    const next = await keyring.prepareNext('acme', 'ES256');
    const { jwks } = await keyring.loadSigningKeys('acme', { retentionSeconds: 3600 });

    const issuer = await startProvider(jwks);
    const published = (await (await fetch(`${issuer}/jwks`)).json()) as { keys: JWK[] };
    expect(published.keys.map((k) => k.kid).sort()).toEqual(jwks.keys.map((k) => k.kid).sort());
    expect(published.keys.filter((k) => k.kid === first || k.kid === next).every((k) => k.key_ops?.join() === 'verify')).toBe(true);
    for (const k of published.keys) expect(k).not.toHaveProperty('d');

    // Several tokens: oidc-provider must never pick the retired or next key of the same alg.
    for (let i = 0; i < 5; i++) {
      const token = await clientCredentialsToken(issuer);
      expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', kid: second });
      await jwtVerify(token, createLocalJWKSet(published), { audience: RESOURCE, issuer });
    }
  });
});
