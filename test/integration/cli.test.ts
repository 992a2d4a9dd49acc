import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli, type CliResult } from '../support/cli.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { runCodeFlow } from '../support/oauth.ts';

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
    expect(created.stdout.trim()).toMatch(/^\S+$/);
    const flow = await runCodeFlow({
      issuer: castellan.issuer, clientId: 'demo-agent', redirectUri: 'http://127.0.0.1:53500/callback', scope: 'openid',
      login: 'alice', password,
    });
    expect(flow.code).toEqual(expect.any(String));

    const taken = await cliWithInput(castellan.env, ['user', 'create', 'demo', 'ALICE'], `${password}\n`);
    expect(taken.code).toBe(1);
    expect(taken.stderr).not.toMatch(/\n\s+at /);
    const short = await cliWithInput(castellan.env, ['user', 'create', 'demo', 'bob'], 'short\n');
    expect(short.code).toBe(1);
    expect(short.stderr).toContain('password');
  });

  it('refuses tenants that do not use initial access tokens, unknown tenants and bad input, without a stack', async () => {
    const wrongMode = await cli(castellan.env, ['initial-access-token', 'demo']);
    expect(wrongMode.code).toBe(2);
    expect(wrongMode.stderr).toContain('registration.mode');
    const unknown = await cli(castellan.env, ['initial-access-token', 'nobody']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown tenant');
    const badTtl = await cli(castellan.env, ['initial-access-token', 'partners', '--ttl', 'soon']);
    expect(badTtl.code).toBe(2);
    const usage = await cli(castellan.env, []);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage:');
    for (const out of [wrongMode, unknown, badTtl, usage]) expect(out.stderr).not.toMatch(/\n\s+at /);
  });
});
