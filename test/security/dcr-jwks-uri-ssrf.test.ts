import { randomUUID } from 'node:crypto';
import { generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { startConnectionCounter, type ConnectionCounter } from '../support/connection-counter.ts';
import { postToken } from '../support/oauth.ts';

/*
 * SSRF through a registered client's jwks_uri (MCP Security Best Practices "Server-Side
 * Request Forgery (SSRF)"; RFC 7591 §2 jwks_uri; RFC 7523 §3): anyone may register on an open
 * tenant, so a jwks_uri on loopback, a private range or the cloud metadata address must never
 * be fetched when the client authenticates. Registration accepts the URL (it is only a
 * string then); the guarded fetch refuses it at use, before connecting, and the client's
 * authentication fails. A loopback listener proves that no connection was made.
 */
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

describe('jwks_uri of a self-registered client pointing inwards (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let counter: ConnectionCounter | undefined;
  let port = 0;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'security_jwks_uri_ssrf');
    counter = await startConnectionCounter();
    port = counter.port;
  });
  afterAll(async () => {
    await counter?.close();
    await castellan?.stop();
  });

  it('never connects to loopback, private or metadata addresses, and the client cannot authenticate', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const targets = [
      `https://127.0.0.1:${port}/jwks`,
      `https://localhost:${port}/jwks`,
      `https://[::ffff:127.0.0.1]:${port}/jwks`,
      'https://169.254.169.254/latest/meta-data/jwks',
      'https://10.0.0.1/jwks',
      'https://192.168.1.1/jwks',
    ];
    for (const jwksUri of targets) {
      const registration = await fetch(`${castellan.issuer}/reg`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_name: 'inward', grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
          token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256', jwks_uri: jwksUri,
        }),
      });
      const client = (await registration.json()) as { client_id?: string };
      expect(registration.status, `${jwksUri} ${JSON.stringify(client)}`).toBe(201);
      const id = String(client.client_id);
      const assertion = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k' }).setIssuer(id).setSubject(id)
        .setAudience(castellan.issuer).setJti(randomUUID()).setIssuedAt().setExpirationTime('2m').sign(privateKey);
      const { status, body } = await postToken(castellan.issuer, {
        grant_type: 'client_credentials', client_id: id, client_assertion_type: ASSERTION_TYPE, client_assertion: assertion,
      });
      expect(status, `${jwksUri} ${JSON.stringify(body)}`).toBe(401);
      expect(body.error).toBe('invalid_client');
      expect(JSON.stringify(body)).not.toContain(jwksUri);
    }
    expect(counter?.connections()).toBe(0);
  });
});
