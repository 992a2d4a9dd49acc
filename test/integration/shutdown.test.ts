import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startCastellanProcess, type CastellanProcess } from '../support/castellan-process.ts';
import { startTestCastellan, testEnvironment } from '../support/castellan.ts';
import { basicAuth } from '../support/oauth.ts';

interface SlowUpload {
  req: ClientRequest;
  /** The rest of the body; sending it completes the request. */
  finish(): void;
  response: Promise<{ status: number; body: string }>;
}

/**
 * A client_credentials token request whose body arrives in two parts. With
 * `Expect: 100-continue` the server answers "100 Continue" once it has the headers and has
 * handed the request to Castellan, so we know it is in flight before we signal.
 */
async function startSlowTokenRequest(baseUrl: string, clientSecret: string): Promise<SlowUpload> {
  const body = new URLSearchParams({ grant_type: 'client_credentials', resource: 'http://localhost:3001/mcp', scope: 'notes:read' }).toString();
  const half = Math.floor(body.length / 2);
  const req = request(`${baseUrl}/t/demo/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(Buffer.byteLength(body)),
      authorization: basicAuth('demo-service', clientSecret),
      expect: '100-continue',
    },
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  // A failure before the assertions below must not be an unhandled rejection.
  response.catch(() => {});
  await new Promise<void>((resolve, reject) => {
    req.once('continue', () => resolve());
    req.once('error', reject);
    req.flushHeaders();
  });
  req.write(body.slice(0, half));
  return { req, finish: () => req.end(body.slice(half)), response };
}

/** The error code of a GET on a new connection (no pooled keep-alive socket), or 'answered'. */
function probeNewConnection(baseUrl: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(`${baseUrl}/healthz`, { agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      resolve('answered');
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? String(err)));
    req.end();
  });
}

/**
 * Resolves once the server refuses new connections (its listener is closed). A connection
 * accepted just before that, with no request read yet, is idle and is reset: try again.
 */
async function untilRefused(baseUrl: string): Promise<string> {
  for (;;) {
    const outcome = await probeNewConnection(baseUrl);
    if (outcome !== 'answered' && outcome !== 'ECONNRESET') return outcome;
    await sleep(20);
  }
}

describe('graceful shutdown of a real process (FerretDB + Redis)', () => {
  let castellan: CastellanProcess | undefined;
  afterEach(async () => {
    await castellan?.kill().catch(() => {});
    castellan = undefined;
  });

  it('on SIGTERM stops accepting, lets a slow request in flight finish, closes the stores and exits 0', async () => {
    const env = await testEnvironment('mongo+redis', 'shutdown_drain');
    castellan = await startCastellanProcess({ ...env, CASTELLAN_SHUTDOWN_DRAIN_SECONDS: '30', LOG_LEVEL: 'info' });
    const ready = await fetch(`${castellan.baseUrl}/readyz`);
    expect(ready.status).toBe(200);

    const slow = await startSlowTokenRequest(castellan.baseUrl, env.CASTELLAN_DEMO_CLIENT_SECRET ?? '');
    const pid = castellan.process.pid;
    if (pid === undefined) throw new Error('no pid');
    process.kill(pid, 'SIGTERM');

    // The listener closes at once: a new connection is refused...
    expect(await untilRefused(castellan.baseUrl)).toBe('ECONNREFUSED');
    // ...while the process keeps running for the request in flight, which is answered.
    slow.finish();
    const answer = await slow.response;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ token_type: 'Bearer', scope: 'notes:read' });

    const exit = await castellan.process.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(castellan.process.output()).toContain('shut down');
  });

  it('cuts a request that outlasts the drain bound, and still exits 0', async () => {
    const env = await testEnvironment('mongo+redis', 'shutdown_bound');
    castellan = await startCastellanProcess({ ...env, CASTELLAN_SHUTDOWN_DRAIN_SECONDS: '1', LOG_LEVEL: 'warn' });
    const slow = await startSlowTokenRequest(castellan.baseUrl, env.CASTELLAN_DEMO_CLIENT_SECRET ?? '');
    const pid = castellan.process.pid;
    if (pid === undefined) throw new Error('no pid');
    process.kill(pid, 'SIGTERM');

    // The rest of the body never comes: the connection is closed at the bound.
    await expect(slow.response).rejects.toThrow(/socket hang up|ECONNRESET/);
    const exit = await castellan.process.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(castellan.process.output()).toContain('still in flight at the end of the drain');
  });
});

describe('readiness while draining', () => {
  it('answers /readyz with 503 as soon as shutdown starts, while a request in flight still completes', async () => {
    const castellan = await startTestCastellan('memory', 'shutdown_ready');
    const { host } = new URL(castellan.baseUrl);
    const body = new URLSearchParams({ grant_type: 'client_credentials', resource: 'http://localhost:3001/mcp', scope: 'notes:read' }).toString();
    // One raw connection: a token request whose body is held back, and (pipelined behind it,
    // sent after shutdown began) a GET /readyz. New connections are refused by then.
    const socket = connect(Number(new URL(castellan.baseUrl).port), '127.0.0.1');
    socket.setEncoding('utf8');
    let received = '';
    const gotContinue = new Promise<void>((resolve) => {
      socket.on('data', (chunk: string) => {
        received += chunk;
        if (received.includes('100 Continue')) resolve();
      });
    });
    const closedSocket = new Promise((resolve) => socket.on('close', resolve));
    socket.write(
      `POST /t/demo/token HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/x-www-form-urlencoded\r\n`
      + `Authorization: ${basicAuth('demo-service', castellan.clientSecret)}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
      + 'Expect: 100-continue\r\n\r\n',
    );
    await gotContinue;

    // close() marks the server not ready before anything else.
    const closing = castellan.running.close({ drainMs: 30_000 });
    socket.write(`${body}GET /readyz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    await closing;
    await closedSocket;

    const responses = received.split(/(?=HTTP\/1\.1 )/).filter((part) => !part.startsWith('HTTP/1.1 100'));
    expect(responses).toHaveLength(2);
    expect(responses[0]).toMatch(/^HTTP\/1\.1 200 /);
    expect(responses[0]).toContain('"token_type":"Bearer"');
    expect(responses[1]).toMatch(/^HTTP\/1\.1 503 /);
    expect(responses[1]).toContain('{"status":"not ready"}');
  });
});
