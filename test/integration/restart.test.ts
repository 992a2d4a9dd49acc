import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { testEnvironment } from '../support/castellan.ts';
import { startCastellanProcess, type CastellanProcess } from '../support/castellan-process.ts';
import { freePort } from '../support/running-server.ts';
import { basicAuth, postToken, runCodeFlow, introspect as introspectAt } from '../support/oauth.ts';

const MCP_RESOURCE = 'http://localhost:3001/mcp';
const REDIRECT = 'http://127.0.0.1:53682/callback';

const started: CastellanProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

async function start(env: Record<string, string>): Promise<CastellanProcess> {
  const process = await startCastellanProcess(env);
  started.push(process);
  return process;
}

async function jwks(issuer: string): Promise<JSONWebKeySet> {
  const response = await fetch(`${issuer}/jwks`);
  expect(response.status).toBe(200);
  return (await response.json()) as JSONWebKeySet;
}

const introspect = (issuer: string, secret: string, token: string) => introspectAt(issuer, basicAuth('demo-service', secret), token);

describe('production settings (FerretDB + Redis) across a process restart', () => {
  it('keeps refresh tokens, keys, used codes and revocations through a crash and a restart', async () => {
    const env = await testEnvironment('mongo+redis', 'restart');
    const issuer = `${env.CASTELLAN_BASE_URL}/t/demo`;
    const secret = env.CASTELLAN_DEMO_CLIENT_SECRET ?? '';
    const first = await start(env);

    const flow = await runCodeFlow({
      issuer,
      clientId: 'demo-agent',
      redirectUri: REDIRECT,
      scope: 'openid offline_access notes:read',
      resource: MCP_RESOURCE,
      login: 'demo',
      password: env.CASTELLAN_DEMO_USER_PASSWORD ?? '',
      // OIDC Core §11: offline_access needs prompt=consent.
      extra: { prompt: 'consent' },
    });
    const tokens = await postToken(issuer, {
      grant_type: 'authorization_code',
      client_id: 'demo-agent',
      code: flow.code,
      redirect_uri: REDIRECT,
      code_verifier: flow.verifier,
      resource: MCP_RESOURCE,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body.refresh_token).toEqual(expect.any(String));
    const revokedToken = String((await postToken(issuer, { grant_type: 'client_credentials' }, basicAuth('demo-service', secret))).body.access_token);
    await fetch(`${issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('demo-service', secret) },
      body: new URLSearchParams({ token: revokedToken }).toString(),
    });
    const liveToken = String((await postToken(issuer, { grant_type: 'client_credentials' }, basicAuth('demo-service', secret))).body.access_token);
    const keysBefore = await jwks(issuer);

    // A crash: no shutdown code runs.
    await first.kill();
    started.splice(started.indexOf(first), 1);
    await start(env);

    const keysAfter = await jwks(issuer);
    expect(keysAfter.keys.map((k) => k.kid).sort()).toEqual(keysBefore.keys.map((k) => k.kid).sort());
    // Tokens signed before the restart verify against the keys published after it.
    const verified = await jwtVerify(String(tokens.body.access_token), createLocalJWKSet(keysAfter), { issuer, audience: MCP_RESOURCE });
    expect(verified.payload.scope).toBe('notes:read');
    await jwtVerify(String(tokens.body.id_token), createLocalJWKSet(keysAfter), { issuer, audience: 'demo-agent' });

    const refreshed = await postToken(issuer, {
      grant_type: 'refresh_token',
      client_id: 'demo-agent',
      refresh_token: String(tokens.body.refresh_token),
      resource: MCP_RESOURCE,
    });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);

    const reusedCode = await postToken(issuer, {
      grant_type: 'authorization_code',
      client_id: 'demo-agent',
      code: flow.code,
      redirect_uri: REDIRECT,
      code_verifier: flow.verifier,
    });
    expect(reusedCode.body.error).toBe('invalid_grant');

    expect(await introspect(issuer, secret, revokedToken)).toEqual({ active: false });
    expect(await introspect(issuer, secret, liveToken)).toMatchObject({ active: true });
  });

  it('elects one active key per algorithm when two server processes start at once on an empty database', async () => {
    const env = await testEnvironment('mongo+redis', 'twostart');
    const otherPort = await freePort();
    const otherEnv = { ...env, PORT: String(otherPort), CASTELLAN_BASE_URL: `http://localhost:${otherPort}` };
    const [a, b] = await Promise.all([start(env), start(otherEnv)]);
    const [keysA, keysB] = await Promise.all([jwks(`${a.baseUrl}/t/demo`), jwks(`${b.baseUrl}/t/demo`)]);
    const kids = (set: JSONWebKeySet) => set.keys.map((k) => `${k.alg}:${k.kid}`).sort();
    expect(kids(keysA)).toEqual(kids(keysB));
    expect(keysA.keys.filter((k) => k.alg === 'RS256')).toHaveLength(1);
    expect(keysA.keys.filter((k) => k.alg === 'ES256')).toHaveLength(1);

    // Each node signs with the elected key: a token from one verifies with the other's JWKS.
    const secret = env.CASTELLAN_DEMO_CLIENT_SECRET ?? '';
    for (const node of [a, b]) {
      const { body } = await postToken(
        `${node.baseUrl}/t/demo`,
        { grant_type: 'client_credentials', resource: MCP_RESOURCE },
        basicAuth('demo-service', secret),
      );
      const other = node === a ? keysB : keysA;
      const { protectedHeader } = await jwtVerify(String(body.access_token), createLocalJWKSet(other), { audience: MCP_RESOURCE });
      expect(other.keys.map((k) => k.kid)).toContain(protectedHeader.kid);
    }
  });
});
