import { once } from 'node:events';
import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import Koa from 'koa';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { requestLog } from './request-log.ts';

/* One access-log line per request, finished or aborted, written when the response closes. */

function capture(level: pino.Level | 'silent' = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level }, stream), lines };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('requestLog', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.close();
    server = undefined;
  });

  async function start(app: Koa): Promise<string> {
    server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('logs a finished request once, with its status and without the query string', async () => {
    const { log, lines } = capture();
    const observed: Array<[string, string, number]> = [];
    const metrics = { observeRequest: (method: string, path: string, status: number) => observed.push([method, path, status]) };
    const app = new Koa();
    app.use(requestLog(log, metrics as never));
    app.use((ctx) => {
      ctx.status = 201;
      ctx.body = 'ok';
    });
    const url = await start(app);
    const response = await fetch(`${url}/t/demo/token?code=secret-code`, { headers: { 'x-request-id': 'abc-123' } });
    expect(response.headers.get('x-request-id')).toBe('abc-123');
    await until(() => lines.length > 0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ reqId: 'abc-123', tenant: 'demo', method: 'GET', path: '/t/demo/token', status: 201 });
    expect(lines[0]).not.toHaveProperty('aborted');
    expect(JSON.stringify(lines)).not.toContain('secret-code');
    expect(observed).toEqual([['GET', '/t/demo/token', 201]]);
  });

  it('logs a request whose connection closed before the answer as aborted', async () => {
    const { log, lines } = capture();
    const app = new Koa();
    app.use(requestLog(log));
    let release: (() => void) | undefined;
    app.use(async (ctx) => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      ctx.body = 'late';
    });
    const url = await start(app);
    const req = request(`${url}/slow`);
    req.on('error', () => {});
    req.end();
    await until(() => release !== undefined);
    req.destroy();
    await until(() => lines.length > 0);
    release?.();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ path: '/slow', aborted: true });
  });

  it('still feeds the metrics when the log level leaves the line out', async () => {
    const { log, lines } = capture('warn');
    const observed: number[] = [];
    const app = new Koa();
    app.use(requestLog(log, { observeRequest: (_m: string, _p: string, status: number) => observed.push(status) } as never));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    const url = await start(app);
    await (await fetch(`${url}/healthz`)).text();
    await until(() => observed.length > 0);
    expect(observed).toEqual([200]);
    expect(lines).toHaveLength(0);
  });
});
