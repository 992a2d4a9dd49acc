import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli, type CliResult } from '../support/cli.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, postToken, runCodeFlow } from '../support/oauth.ts';

const cli = runCli;

/** Runs the CLI with a line on standard input (how passwords reach it). */
function cliWithInput(env: Record<string, string>, args: string[], input: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('the castellan CLI on FerretDB + Redis', () => {
  let castellan: TestCastellan;
  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'cli');
    await castellan.running.storage.tenants.create({ id: 'partners', displayName: 'Partners', settings: { registration: { mode: 'initial-access-token' } } });
  });
  afterAll(async () => castellan?.stop());

  it('issues an initial access token that the running server accepts for registration', async () => {
    const { code, stdout, stderr } = await cli(castellan.env, ['initial-access-token', 'partners', '--ttl', '600']);
    expect(code, stderr).toBe(0);
    const token = stdout.trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const response = await fetch(`${castellan.baseUrl}/t/partners/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:5000/callback'], token_endpoint_auth_method: 'none' }),
    });
    expect(response.status).toBe(201);
  });

  it('creates a user whose password (read from stdin) signs in at the running server', async () => {
    const password = 'a long enough password';
    const created = await cliWithInput(castellan.env, ['user', 'create', 'demo', 'alice', '--email', 'alice@example.com', '--name', 'Alice'], `${password}\n`);
    expect(created.code, created.stderr).toBe(0);
    // Only the result on stdout: the audit line (admin_user_created) goes to stderr.
    expect(created.stdout).toMatch(/^\S+\n$/);
    expect(created.stderr).toContain('admin_user_created');
    expect(created.stderr).not.toContain(password);
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: 'http://127.0.0.1:53500/callback', scope: 'openid',
      login: 'alice', password,
    });
    expect(flow.code).toEqual(expect.any(String));

    const [taken, short] = await Promise.all([
      cliWithInput(castellan.env, ['user', 'create', 'demo', 'ALICE'], `${password}\n`),
      cliWithInput(castellan.env, ['user', 'create', 'demo', 'bob'], 'short\n'),
    ]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).not.toMatch(/\n\s+at /);
    expect(short.code).toBe(1);
    expect(short.stderr).toContain('password');
  });

  it('refuses tenants that do not use initial access tokens, unknown tenants and bad input, without a stack', async () => {
    const [wrongMode, unknown, badTtl, usage] = await Promise.all([
      cli(castellan.env, ['initial-access-token', 'demo']),
      cli(castellan.env, ['initial-access-token', 'nobody']),
      cli(castellan.env, ['initial-access-token', 'partners', '--ttl', 'soon']),
      cli(castellan.env, []),
    ]);
    expect(wrongMode.code).toBe(2);
    expect(wrongMode.stderr).toContain('registration.mode');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown tenant');
    expect(badTtl.code).toBe(2);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage:');
    for (const out of [wrongMode, unknown, badTtl, usage]) expect(out.stderr).not.toMatch(/\n\s+at /);
  });

  it('init makes the system tenant and an admin client whose printed secret works; a second init prints no secret', async () => {
    const first = await cli(castellan.env, ['init']);
    expect(first.code, first.stderr).toBe(0);
    const clientId = /^client_id: (\S+)$/m.exec(first.stdout)?.[1];
    const secret = /^client_secret: (\S+)$/m.exec(first.stdout)?.[1];
    expect(clientId).toBeDefined();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(first.stdout).toContain(`issuer: ${castellan.baseUrl}/t/system`);

    const resource = /^resource: (\S+)$/m.exec(first.stdout)?.[1];
    expect(resource).toBe(`${castellan.baseUrl}/admin/v1`);
    const token = await postToken(`${castellan.baseUrl}/t/system`, { grant_type: 'client_credentials', resource: resource!, scope: 'admin:read admin:write' }, basicAuth(clientId!, secret!));
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    expect(token.body.scope).toBe('admin:read admin:write');
    // The token opens the admin API.
    const tenants = await fetch(`${castellan.baseUrl}/admin/v1/tenants`, { headers: { authorization: `Bearer ${String(token.body.access_token)}` } });
    expect(tenants.status).toBe(200);
    expect(JSON.stringify(await tenants.json())).toContain('"system"');

    const again = await cli(castellan.env, ['init']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('already initialised');
    expect(again.stdout).not.toContain('client_secret');
    expect(again.stdout + again.stderr).not.toContain(secret!);
    // The first secret still works: a second init changed nothing.
    expect((await postToken(`${castellan.baseUrl}/t/system`, { grant_type: 'client_credentials' }, basicAuth(clientId!, secret!))).status).toBe(200);
    // The CLI's admin events went into the tenant's hash chain (tenant and client created).
    const verify = await cli(castellan.env, ['audit', 'verify', 'system']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^ok: [2-9]\d* events/);
  });

  it('creates a tenant from a settings file, then a confidential client whose printed secret gets tokens', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'castellan-cli-'));
    const settingsFile = join(dir, 'acme.json');
    await writeFile(settingsFile, JSON.stringify({ scopes: ['files:read'], resources: [{ uri: 'https://files.acme.example/mcp', scopes: ['files:read'] }] }));
    const tenant = await cli(castellan.env, ['tenant', 'create', 'acme', '--name', 'Acme Corp', '--settings-file', settingsFile]);
    expect(tenant.code, tenant.stderr).toBe(0);
    expect(tenant.stdout.trim()).toBe(`${castellan.baseUrl}/t/acme`);
    const metadata = await fetch(`${castellan.baseUrl}/.well-known/oauth-authorization-server/t/acme`);
    expect(metadata.status).toBe(200);

    await writeFile(join(dir, 'bad.json'), JSON.stringify({ ttl: { accessToken: -5 } }));
    const [taken, badFile, badSettings, needsSecret, badGrant] = await Promise.all([
      cli(castellan.env, ['tenant', 'create', 'acme']),
      cli(castellan.env, ['tenant', 'create', 'other', '--settings-file', join(dir, 'missing.json')]),
      cli(castellan.env, ['tenant', 'create', 'other', '--settings-file', join(dir, 'bad.json')]),
      cli(castellan.env, ['client', 'create', 'acme', '--grant', 'client_credentials']),
      cli(castellan.env, ['client', 'create', 'acme', '--grant', 'password', '--confidential']),
    ]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('exists');
    expect(badFile.code).toBe(2);
    expect(badSettings.code).toBe(1);
    expect(badSettings.stderr).toContain('accessToken');

    const client = await cli(castellan.env, ['client', 'create', 'acme', '--name', 'Nightly sync', '--confidential', '--grant', 'client_credentials', '--scope', 'files:read']);
    expect(client.code, client.stderr).toBe(0);
    const clientId = /^client_id: (\S+)$/m.exec(client.stdout)?.[1];
    const secret = /^client_secret: (\S+)$/m.exec(client.stdout)?.[1];
    expect(clientId && secret).toBeTruthy();
    const token = await postToken(`${castellan.baseUrl}/t/acme`, { grant_type: 'client_credentials', resource: 'https://files.acme.example/mcp', scope: 'files:read' }, basicAuth(clientId!, secret!));
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    expect(token.body.scope).toBe('files:read');
    const wrong = await postToken(`${castellan.baseUrl}/t/acme`, { grant_type: 'client_credentials' }, basicAuth(clientId!, `${secret!}x`));
    expect(wrong.status).toBe(401);

    const publicClient = await cli(castellan.env, ['client', 'create', 'acme', '--redirect-uri', 'http://127.0.0.1:8765/callback']);
    expect(publicClient.code, publicClient.stderr).toBe(0);
    expect(publicClient.stdout).toMatch(/^client_id: \S+\n$/);
    expect(needsSecret.code).toBe(2);
    expect(badGrant.code).toBe(2);
    for (const out of [taken, badFile, badSettings, needsSecret, badGrant]) expect(out.stderr).not.toMatch(/\n\s+at /);
  });

  it('key rotate changes the signing kid (seen by the server once it re-reads the tenant); key list shows the states', async () => {
    const service = basicAuth('demo-service', castellan.clientSecret);
    const jwt = async () => {
      const { status, body } = await postToken(castellan.issuer, { grant_type: 'client_credentials', resource: 'http://localhost:3001/mcp', scope: 'notes:read' }, service);
      expect(status).toBe(200);
      return decodeProtectedHeader(String(body.access_token)).kid;
    };
    const before = await jwt();
    const rotated = await cli(castellan.env, ['key', 'rotate', 'demo', '--alg', 'ES256']);
    expect(rotated.code, rotated.stderr).toBe(0);
    const [alg, kid, was] = rotated.stdout.trim().split('\t');
    expect(alg).toBe('ES256');
    expect(was).toBe(`(was ${before})`);
    expect(kid).not.toBe(before);
    expect(rotated.stderr).toContain('key_rotated');

    // What every node does within its 10 s re-read bound, at once here.
    castellan.running.tenants.invalidate('demo');
    expect(await jwt()).toBe(kid);

    const list = await cli(castellan.env, ['key', 'list', 'demo']);
    expect(list.code, list.stderr).toBe(0);
    const rows = list.stdout.trim().split('\n').slice(1).map((line) => line.split('\t'));
    expect(rows.find((r) => r[0] === kid)?.[2]).toBe('active');
    expect(rows.find((r) => r[0] === before)?.[2]).toBe('retired');
    expect(list.stdout).not.toMatch(/"d"|privateJwk|encrypted/);

    const retired = await cli(castellan.env, ['key', 'retire', 'demo', before!]);
    expect(retired.code, retired.stderr).toBe(0);
    expect(retired.stdout).toBe(`ES256\t${before}\tretired (was retired)\n`);
    expect(retired.stderr).toContain('key_retired');
    castellan.running.tenants.invalidate('demo');
    const jwks = (await (await fetch(`${castellan.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).not.toContain(before);
    expect(jwks.keys.map((k) => k.kid)).toContain(kid);

    const [badAlg, unknown, unknownOption] = await Promise.all([
      cli(castellan.env, ['key', 'rotate', 'demo', '--alg', 'HS256']),
      cli(castellan.env, ['key', 'list', 'nobody']),
      cli(castellan.env, ['key', 'list', 'demo', '--colour']),
    ]);
    expect(badAlg.code).toBe(2);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown tenant');
    expect(unknownOption.code).toBe(2);
  });

  it('the castellan bin runs the CLI even from the Node on PATH (Node 20 has no type stripping)', async () => {
    // Debian's Node where installed (the case that matters), else this one.
    const node = existsSync('/usr/bin/node') ? '/usr/bin/node' : process.execPath;
    const list = await runCli(castellan.env, ['key', 'list', 'demo'], { binOn: node });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[0]).toBe('kid\talg\tstate\tcreated\tactivated\tremove_at');
    const usage = await runCli(castellan.env, ['nonsense'], { binOn: node });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage:');
  });
});
