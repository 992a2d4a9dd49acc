import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { closeServer, listen, pathOf } from '../shared/http.ts';

/*
 * Receives the authorization response on a loopback redirect URI (RFC 8252 §7.3: the IP
 * literal, not "localhost"; the AS accepts any port). Each authorization request is awaited
 * by its `state`, so a stray or forged redirect matches nothing.
 */

export interface CallbackReceiver {
  /** http://127.0.0.1:<port>/callback */
  readonly redirectUrl: string;
  /**
   * The redirect's query parameters (code, state, iss, or error) for the request with this
   * state. Call it before sending the user to the AS, so no redirect can arrive unexpected.
   */
  expect(state: string, timeoutMs: number): Promise<URLSearchParams>;
  /** Gives up waiting for this state (the user could not be sent to the AS). */
  fail(state: string, error: Error): void;
  close(): Promise<void>;
}

interface Waiter {
  resolve(params: URLSearchParams): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

function page(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, PAGE_HEADERS);
  res.end(`<!doctype html><meta charset="utf-8"><title>Castellan example agent</title><p>${message}</p>`);
}

export async function startCallbackReceiver(options: { port?: number; host?: string; path?: string } = {}): Promise<CallbackReceiver> {
  const host = options.host ?? '127.0.0.1';
  const path = options.path ?? '/callback';
  const waiters = new Map<string, Waiter>();

  const settle = (state: string): Waiter | undefined => {
    const waiter = waiters.get(state);
    if (waiter) {
      clearTimeout(waiter.timer);
      waiters.delete(state);
    }
    return waiter;
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' || pathOf(req) !== path) {
      page(res, 404, 'Not found.');
      return;
    }
    const params = new URL(req.url ?? '/', 'http://unused').searchParams;
    const waiter = settle(params.get('state') ?? '');
    if (!waiter) {
      page(res, 400, 'This authorization response matches no request in progress.');
      return;
    }
    waiter.resolve(params);
    page(res, 200, params.has('error') ? 'Authorization was not granted. You can close this window.' : 'Authorization complete. You can close this window.');
  });
  const port = await listen(server, options.port ?? 0, host);

  return {
    redirectUrl: `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`,
    expect(state, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          settle(state);
          reject(new Error(`no authorization response within ${Math.round(timeoutMs / 1000)} s`));
        }, timeoutMs);
        timer.unref();
        waiters.set(state, { resolve, reject, timer });
      });
    },
    fail(state, error) {
      settle(state)?.reject(error);
    },
    async close() {
      for (const state of [...waiters.keys()]) settle(state)?.reject(new Error('the agent stopped'));
      await closeServer(server);
    },
  };
}
