import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeUpstreamFailure, DISCOVERY_TTL_MS, isRetryableUpstreamFailure, upstreamConfiguration, UpstreamUnavailableError } from './upstream-client.ts';
import { upstreamIdpSchema } from './upstream-settings.ts';

describe('upstream discovery cache', () => {
  let server: Server;
  let issuer: string;
  let requests = 0;
  let failing = false;

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests += 1;
      if (failing || !req.url?.endsWith('/.well-known/openid-configuration')) {
        res.writeHead(500).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}/t/idp`;
  });
  afterAll(async () => new Promise((resolve) => server.close(resolve)));

  const idp = (id: string) => upstreamIdpSchema.parse({ id, name: id, issuer, clientId: 'c' });

  it('discovers once per tenant and IdP for DISCOVERY_TTL_MS, concurrent first uses included, then again', async () => {
    const start = Date.now();
    requests = 0;
    const [a, b] = await Promise.all([upstreamConfiguration('t1', idp('one'), start), upstreamConfiguration('t1', idp('one'), start)]);
    expect(a).toBe(b);
    expect(a.serverMetadata().issuer).toBe(issuer);
    expect(await upstreamConfiguration('t1', idp('one'), start + DISCOVERY_TTL_MS - 1)).toBe(a);
    expect(requests).toBe(1);
    await upstreamConfiguration('t2', idp('one'), start); // another tenant: its own entry
    expect(requests).toBe(2);
    expect(await upstreamConfiguration('t1', idp('one'), start + DISCOVERY_TTL_MS + 1)).not.toBe(a);
    expect(requests).toBe(3);
  });

  it('does not cache a failure: the next sign-in tries again', async () => {
    requests = 0;
    failing = true;
    await expect(upstreamConfiguration('t3', idp('two'))).rejects.toBeInstanceOf(UpstreamUnavailableError);
    failing = false;
    await expect(upstreamConfiguration('t3', idp('two'))).resolves.toBeDefined();
    expect(requests).toBe(2);
  });

  it('refuses without a request: a missing client secret, plain http off loopback', async () => {
    requests = 0;
    const secretless = upstreamIdpSchema.parse({ id: 'three', name: 'x', issuer, clientId: 'c', clientSecretEnv: 'CASTELLAN_TEST_NO_SUCH_SECRET' });
    await expect(upstreamConfiguration('t4', secretless)).rejects.toThrow(/CASTELLAN_TEST_NO_SUCH_SECRET/);
    // The schema refuses this issuer; the client checks again on its own.
    const remote = { ...idp('four'), issuer: 'http://idp.example' };
    await expect(upstreamConfiguration('t4', remote)).rejects.toThrow(/loopback/);
    expect(requests).toBe(0);
  });
});

describe('what is logged of an upstream failure', () => {
  it('never the authorization response: a refused response with a live code logs its reason only', async () => {
    const configuration = new client.Configuration(
      { issuer: 'https://idp.example', token_endpoint: 'https://idp.example/token', authorization_response_iss_parameter_supported: true },
      'castellan',
    );
    const response = new URL('https://castellan.example/t/a/upstream/callback?code=LIVE-CODE-123&state=s1&iss=https://evil.example');
    const err: unknown = await client.authorizationCodeGrant(configuration, response, { expectedState: 's1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(client.ClientError);
    expect(isRetryableUpstreamFailure(err)).toBe(false);
    const logged = JSON.stringify(describeUpstreamFailure(err));
    expect(logged).toContain('OAUTH_INVALID_RESPONSE');
    expect(logged).not.toContain('LIVE-CODE-123');
  });

  it('the socket error behind an unreachable upstream', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const idp = upstreamIdpSchema.parse({ id: 'gone', name: 'Gone', issuer: `http://127.0.0.1:${port}`, clientId: 'c' });
    const err: unknown = await upstreamConfiguration('t5', idp).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamUnavailableError);
    expect(isRetryableUpstreamFailure(err)).toBe(true);
    expect(describeUpstreamFailure(err)).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', cause: 'ECONNREFUSED' });
  });
});
