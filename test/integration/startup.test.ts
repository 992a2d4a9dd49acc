import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnManaged, type ExitInfo, type ManagedProcess } from '../support/child-processes.ts';
import { basicAuth, postToken, runCodeFlow } from '../support/oauth.ts';
import { freePort } from '../support/running-server.ts';

const REPO = join(import.meta.dirname, '..', '..');
/** The `npm start` entry point. */
const MAIN = join(REPO, 'src', 'main.ts');
/** A stack frame line as node prints it. */
const STACK_LINE = /^ {4}at /m;

/** Only what main.ts needs: no MONGODB_URL or other settings leak in from the test's environment. */
function cleanEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', ...settings };
}

/** Runs main.ts to its exit (it must exit by itself: the settings make it fail). */
function runToExit(settings: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN], { cwd: REPO, env: cleanEnv(settings), timeout: 8_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

async function waitForOutput(child: ManagedProcess, marker: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => {
    exited = true;
  });
  while (!child.output().includes(marker)) {
    if (exited || Date.now() > deadline) throw new Error(`no "${marker}" from main.ts:\n${child.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return child.output();
}

function printed(output: string, label: RegExp): string {
  const match = label.exec(output);
  if (!match?.[1]) throw new Error(`main.ts did not print ${label}:\n${output}`);
  return match[1];
}

const started: ManagedProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((child) => child.stop(2_000)));
});

describe('npm start (src/main.ts)', () => {
  it('exits non-zero on an invalid PORT, naming it, without a stack trace', async () => {
    const { code, stderr } = await runToExit({ PORT: 'abc' });
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(stderr).toContain('PORT');
    expect(stderr).not.toMatch(STACK_LINE);
  });

  it('exits non-zero when MONGODB_URL comes without CASTELLAN_KEY_ENCRYPTION_KEY, naming the key', async () => {
    const { code, stderr } = await runToExit({ MONGODB_URL: 'mongodb://127.0.0.1:1/castellan' });
    expect(code).not.toBe(0);
    expect(stderr).toContain('CASTELLAN_KEY_ENCRYPTION_KEY');
    expect(stderr).not.toMatch(STACK_LINE);
  });

  it('exits non-zero when its port is taken, saying why, without a stack trace', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const { code, stderr } = await runToExit({ PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'silent' });
      expect(code).not.toBe(0);
      expect(stderr).toContain('EADDRINUSE');
      expect(stderr).not.toMatch(STACK_LINE);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('on the memory store prints working URLs and demo credentials, warns that state is lost, and stops on SIGTERM with 0', async () => {
    const port = await freePort();
    const base = `http://localhost:${port}`;
    const child = spawnManaged(process.execPath, [MAIN], {
      env: cleanEnv({ PORT: String(port), HOST: '127.0.0.1', CASTELLAN_BASE_URL: base }),
    });
    started.push(child);
    const output = await waitForOutput(child, 'admin client:', 8_000);

    expect(output).toMatch(/in-memory store.*lost on restart/);
    const issuer = printed(output, /issuer:\s+(\S+)/);
    const metadataUrl = printed(output, /metadata \(RFC 8414\):\s+(\S+)/);
    const discoveryUrl = printed(output, /OIDC discovery:\s+(\S+)/);
    const secret = printed(output, /confidential client:\s+demo-service \/ secret (\S+)/);
    const password = printed(output, /user:\s+demo \/ (\S+)/);
    expect(issuer).toBe(`${base}/t/demo`);

    for (const url of [metadataUrl, discoveryUrl]) {
      const response = await fetch(url);
      expect(response.status, url).toBe(200);
      const metadata = (await response.json()) as Record<string, unknown>;
      expect(metadata.issuer).toBe(issuer);
      expect(metadata.token_endpoint).toBe(`${issuer}/token`);
    }
    // The printed credentials are the live ones.
    const token = await postToken(issuer, { grant_type: 'client_credentials' }, basicAuth('demo-service', secret));
    expect(token.status).toBe(200);
    const flow = await runCodeFlow({
      issuer,
      clientId: 'demo-agent',
      redirectUri: 'http://127.0.0.1:53682/callback',
      scope: 'openid',
      login: 'demo',
      password,
    });
    expect(flow.code).toBeTruthy();

    // The printed admin client gets an admin token that opens the admin API.
    const [, adminId, adminSecret] = /admin client:\s+(\S+) \/ secret (\S+)/.exec(output) ?? [];
    if (!adminId || !adminSecret) throw new Error(`no admin client printed:\n${output}`);
    const adminToken = await postToken(`${base}/t/system`, {
      grant_type: 'client_credentials', resource: `${base}/admin/v1`, scope: 'admin:read admin:write',
    }, basicAuth(adminId, adminSecret));
    expect(adminToken.status, JSON.stringify(adminToken.body)).toBe(200);
    const tenants = await fetch(`${base}/admin/v1/tenants`, { headers: { authorization: `Bearer ${String(adminToken.body.access_token)}` } });
    expect(tenants.status).toBe(200);
    expect(JSON.stringify(await tenants.json())).toContain('"demo"');

    if (child.pid === undefined) throw new Error('main.ts has no pid');
    process.kill(child.pid, 'SIGTERM');
    const exit = await Promise.race([
      child.exited,
      new Promise<ExitInfo>((resolve) => setTimeout(() => resolve({ code: null, signal: null }), 5_000)),
    ]);
    expect(exit, child.output()).toEqual({ code: 0, signal: null });
  });
});
