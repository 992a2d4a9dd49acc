import { rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { expect } from 'vitest';
import { Redis } from 'ioredis';
import { spawnManaged, waitUntilReady, type ManagedProcess } from '../support/child-processes.ts';
import { ensureFerretDbBinary } from '../support/ferretdb.ts';
import { ensureRedisServer } from '../support/redis.ts';
import { freePort, makeServerDir } from '../support/running-server.ts';
import { basicAuth, codeRedemption, followAuthorization, newBrowser, pkcePair, postToken } from '../support/oauth.ts';

/**
 * Store servers the fault tests may SIGKILL and start again on the same port (FerretDB with
 * its same data directory), a TCP proxy that delays or stalls, a fetch recorder that judges
 * every response Castellan gives, and the request loops of the load.
 */

export interface KillableServer {
  readonly url: string;
  readonly port: number;
  /** SIGKILL: the server gets no chance to close anything. */
  kill(): Promise<void>;
  /** Starts the server again on the same port (and data directory). */
  restart(): Promise<void>;
  /** Stops it for good and removes its data directory. */
  stop(): Promise<void>;
}

async function sigkill(child: ManagedProcess): Promise<void> {
  if (child.pid !== undefined) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await child.exited;
}

async function pingRedis(url: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
  } finally {
    client.disconnect();
  }
}

async function pingMongo(url: string): Promise<void> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 1000, connectTimeoutMS: 1000 });
  try {
    await client.db('admin').command({ ping: 1 });
  } finally {
    await client.close();
  }
}

/**
 * A server process on a fixed port that can be SIGKILLed and started again: `spawn` starts it
 * once, `ready` waits until it answers. The port was free a moment ago (or was ours): a few
 * tries cover a slow release.
 */
async function startKillable(options: {
  url: string;
  port: number;
  dir: string;
  spawn: () => ManagedProcess;
  ready: (child: ManagedProcess) => Promise<void>;
}): Promise<KillableServer> {
  let child: ManagedProcess | undefined;
  const start = async (): Promise<void> => {
    for (let attempt = 1; ; attempt += 1) {
      child = options.spawn();
      try {
        await options.ready(child);
        return;
      } catch (error) {
        await child.stop();
        if (attempt >= 5) throw error;
        await sleep(200);
      }
    }
  };
  await start();
  return {
    url: options.url,
    port: options.port,
    kill: async () => { if (child) await sigkill(child); },
    restart: start,
    async stop() {
      await child?.stop();
      await rm(options.dir, { recursive: true, force: true });
    },
  };
}

/** A redis-server on a fixed port. Like the test setup's, it persists nothing: a restart starts empty. */
export async function startKillableRedis(): Promise<KillableServer> {
  const binary = await ensureRedisServer();
  const dir = await makeServerDir('redis');
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  return startKillable({
    url, port, dir,
    spawn: () => spawnManaged(binary, [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning',
    ]),
    ready: (child) => waitUntilReady('redis-server', () => pingRedis(url), child, 10_000),
  });
}

/** FerretDB on a fixed port; a restart reopens the same SQLite data directory. */
export async function startKillableFerretDb(): Promise<KillableServer> {
  const binary = await ensureFerretDbBinary();
  const dir = await makeServerDir('ferretdb');
  const port = await freePort();
  const url = `mongodb://127.0.0.1:${port}/`;
  return startKillable({
    url, port, dir,
    spawn: () => spawnManaged(binary, ['-listen', `127.0.0.1:${port}`, '-data-dir', dir, '-exit-on-stdin-close'], { stdinPipe: true }),
    ready: async (child) => {
      await child.firstLine(15_000);
      await waitUntilReady('FerretDB', () => pingMongo(url), child, 15_000);
    },
  });
}

export type ProxyMode =
  | { kind: 'pass' }
  /** Every chunk, both ways, waits this long before it is passed on. */
  | { kind: 'delay'; ms: number }
  /**
   * Connections stay open, but nothing is passed on either way until the mode changes (a
   * hung server, a black-holed network): like TCP, the bytes are held, not lost.
   */
  | { kind: 'stall' };

export interface FaultProxy {
  readonly port: number;
  setMode(mode: ProxyMode): void;
  close(): Promise<void>;
}

/** One direction of a proxied connection: chunks leave in order, as the mode allows. */
class Lane {
  readonly #queue: Buffer[] = [];
  #busy = false;
  readonly #to: Socket;
  readonly #mode: () => ProxyMode;

  constructor(to: Socket, mode: () => ProxyMode) {
    this.#to = to;
    this.#mode = mode;
  }

  push(chunk: Buffer): void {
    this.#queue.push(chunk);
    this.pump();
  }

  pump(): void {
    if (this.#busy) return;
    const mode = this.#mode();
    if (mode.kind === 'stall') return;
    const chunk = this.#queue.shift();
    if (chunk === undefined) return;
    if (mode.kind === 'pass') {
      if (!this.#to.destroyed) this.#to.write(chunk);
      this.pump();
      return;
    }
    this.#busy = true;
    setTimeout(() => {
      this.#busy = false;
      if (!this.#to.destroyed) this.#to.write(chunk);
      this.pump();
    }, mode.ms);
  }
}

/** A TCP proxy on 127.0.0.1 in front of `targetPort`, whose behaviour the test switches. */
export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  let mode: ProxyMode = { kind: 'pass' };
  const sockets = new Set<Socket>();
  const lanes = new Set<Lane>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    const up = new Lane(upstream, () => mode);
    const down = new Lane(client, () => mode);
    for (const [socket, lane] of [[client, up], [upstream, down]] as const) {
      sockets.add(socket);
      lanes.add(lane);
      socket.on('data', (chunk: Buffer) => lane.push(chunk));
      socket.on('close', () => {
        sockets.delete(socket);
        lanes.delete(lane);
        client.destroy();
        upstream.destroy();
      });
      socket.on('error', () => socket.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('proxy has no port');
  return {
    port: address.port,
    setMode(next) {
      mode = next;
      for (const lane of lanes) lane.pump();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One response (or failure to get one) that breaks the rules of a store fault. */
export interface Violation {
  url: string;
  what: string;
}

const STACK = /\n\s+at [^\n]+:\d+:\d+/;

/**
 * Wraps the global fetch so every request to `baseUrl` is judged: a 5xx other than 503, a 503
 * without Retry-After or without temporarily_unavailable, a stack trace in a body, an error
 * redirect with server_error, and (unless `networkErrorsAllowed()`) a connection that fails.
 */
export function recordResponses(baseUrl: string, options: { networkErrorsAllowed?: () => boolean; requestTimeoutMs?: number } = {}): {
  violations: Violation[];
  counts: Map<number, number>;
  restore(): void;
} {
  const original = globalThis.fetch;
  const networkErrorsAllowed = options.networkErrorsAllowed ?? (() => false);
  const violations: Violation[] = [];
  const counts = new Map<number, number>();
  globalThis.fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    if (!url.startsWith(baseUrl)) return original(input, init);
    const path = new URL(url).pathname;
    let response: Response;
    try {
      // A request that never ends is the worst answer: bound every one.
      const bounded = options.requestTimeoutMs !== undefined && init?.signal == null
        ? { ...init, signal: AbortSignal.timeout(options.requestTimeoutMs) }
        : init;
      response = await original(input, bounded);
    } catch (error) {
      if (!networkErrorsAllowed()) violations.push({ url: path, what: `no response: ${String(error)}` });
      throw error;
    }
    counts.set(response.status, (counts.get(response.status) ?? 0) + 1);
    const body = await response.clone().text().catch(() => '');
    if (response.status >= 500 && response.status !== 503) violations.push({ url: path, what: `${response.status}: ${body.slice(0, 200)}` });
    if (response.status === 503) {
      if (!response.headers.get('retry-after')) violations.push({ url: path, what: `503 without Retry-After: ${body.slice(0, 200)}` });
      if (!body.includes('temporarily_unavailable')) violations.push({ url: path, what: `503 without temporarily_unavailable: ${body.slice(0, 200)}` });
    }
    if (STACK.test(body)) violations.push({ url: path, what: `stack trace in ${response.status}: ${body.slice(0, 300)}` });
    const location = response.headers.get('location') ?? '';
    if (/[?&#]error=server_error/.test(location)) violations.push({ url: path, what: `error redirect: ${location.slice(0, 200)}` });
    return response;
  };
  return { violations, counts, restore: () => { globalThis.fetch = original; } };
}

export type Outcome = 'ok' | 'failed';

export interface LoopStats {
  ok: number;
  failed: number;
  /** Date.now() of the last success. */
  lastOk: number;
  /** Date.now() at which each iteration ended, success or not. */
  ends: number[];
  /** A few failure messages, for the assertion messages. */
  samples: string[];
}

/**
 * Runs `count` copies of each loop until stop() is called; each iteration's result is
 * counted per loop name. An iteration that throws counts as failed (the recorder judges
 * whether the response was an acceptable one).
 */
export function startLoops(loops: Record<string, { count: number; body: () => Promise<void> }>): {
  stats: Map<string, LoopStats>;
  stop(): Promise<void>;
} {
  let running = true;
  const stats = new Map<string, LoopStats>();
  const tasks: Array<Promise<void>> = [];
  for (const [name, loop] of Object.entries(loops)) {
    const stat: LoopStats = { ok: 0, failed: 0, lastOk: 0, ends: [], samples: [] };
    stats.set(name, stat);
    for (let i = 0; i < loop.count; i += 1) {
      tasks.push((async () => {
        while (running) {
          try {
            await loop.body();
            stat.ok += 1;
            stat.lastOk = Date.now();
          } catch (error) {
            stat.failed += 1;
            if (stat.samples.length < 5) stat.samples.push(String(error).slice(0, 200));
            // Do not spin on a refused connection.
            await sleep(20);
          } finally {
            stat.ends.push(Date.now());
          }
        }
      })());
    }
  }
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(tasks);
    },
  };
}

/** The loops none of whose iterations ended (with success or failure) between `from` and `to`: they hung. */
export function silentBetween(stats: Map<string, LoopStats>, from: number, to: number): string[] {
  return [...stats].filter(([, s]) => !s.ends.some((t) => t >= from && t <= to)).map(([name]) => name);
}

/** Waits until every loop has succeeded after `since`, or `boundMs` passes; returns the names still failing. */
export async function untilAllSucceedAfter(stats: Map<string, LoopStats>, since: number, boundMs: number): Promise<string[]> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const lagging = [...stats].filter(([, s]) => s.lastOk <= since).map(([name]) => name);
    if (lagging.length === 0 || Date.now() > deadline) return lagging;
    await sleep(100);
  }
}

export const MCP_RESOURCE = 'http://localhost:3001/mcp';
export const OPAQUE_RESOURCE = 'http://localhost:3002/api';
export const REDIRECT = 'http://127.0.0.1:53682/callback';

/** What the loops were given with 200/201: every one must survive the fault. */
export interface Issued {
  /** Opaque access tokens (client_credentials and code flow) and refresh tokens. */
  opaqueTokens: string[];
  jwts: string[];
  refreshTokens: string[];
  /** Codes redeemed with 200, with what redeems them again. */
  redeemedCodes: Array<{ code: string; verifier: string }>;
  /** Codes whose redemption failed (a 503 in the fault): each may redeem later, at most once. */
  unredeemedCodes: Array<{ code: string; verifier: string }>;
  /** Registrations answered 201. */
  clients: Array<{ uri: string; token: string; clientId: string }>;
}

export function newIssued(): Issued {
  return { opaqueTokens: [], jwts: [], refreshTokens: [], redeemedCodes: [], unredeemedCodes: [], clients: [] };
}

function expectStatus(what: string, status: number, body: unknown, wanted: number): void {
  if (status !== wanted) throw new Error(`${what}: ${status} ${JSON.stringify(body).slice(0, 200)}`);
}

export interface Workload {
  issuer: string;
  /** The tenant whose registration is open without a practical rate limit. */
  registrationIssuer: string;
  clientSecret: string;
  userPassword: string;
  issued: Issued;
}

export function clientCredentialsLoop(w: Workload, format: 'opaque' | 'jwt'): () => Promise<void> {
  return async () => {
    const { status, body } = await postToken(
      w.issuer,
      { grant_type: 'client_credentials', resource: format === 'jwt' ? MCP_RESOURCE : OPAQUE_RESOURCE },
      basicAuth('demo-service', w.clientSecret),
    );
    expectStatus('client_credentials', status, body, 200);
    (format === 'jwt' ? w.issued.jwts : w.issued.opaqueTokens).push(String(body.access_token));
  };
}

export function introspectionLoop(w: Workload): () => Promise<void> {
  return async () => {
    const token = w.issued.opaqueTokens.at(-1 - Math.floor(Math.random() * Math.min(20, w.issued.opaqueTokens.length)));
    const response = await fetch(`${w.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth('demo-service', w.clientSecret) },
      body: new URLSearchParams({ token: token ?? 'none' }).toString(),
    });
    const body = (await response.json()) as Record<string, unknown>;
    expectStatus('introspection', response.status, body, 200);
    if (token !== undefined && body.active !== true) throw new Error('a token issued earlier introspects inactive');
  };
}

/** A whole code flow (login, consent, code, redemption) with offline_access and an opaque resource. */
/** Redeems a code of the code-flow loop (demo-agent, the opaque resource). */
function redeemCode(w: Workload, flow: { code: string; verifier: string }): ReturnType<typeof postToken> {
  return postToken(w.issuer, { ...codeRedemption(flow, 'demo-agent', REDIRECT), resource: OPAQUE_RESOURCE });
}

export function codeFlowLoop(w: Workload): () => Promise<void> {
  return async () => {
    const { verifier, challenge } = pkcePair();
    const query = new URLSearchParams({
      client_id: 'demo-agent', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid offline_access notes:read',
      state: 'fault', code_challenge: challenge, code_challenge_method: 'S256', resource: OPAQUE_RESOURCE, prompt: 'consent',
    });
    const params = await followAuthorization(newBrowser(), `${w.issuer}/auth?${query}`, REDIRECT, 'demo', w.userPassword);
    const code = params.get('code');
    if (!code) throw new Error(`authorization answered ${params.toString()}`);
    const { status, body } = await redeemCode(w, { code, verifier });
    if (status !== 200) w.issued.unredeemedCodes.push({ code, verifier });
    expectStatus('code redemption', status, body, 200);
    w.issued.redeemedCodes.push({ code, verifier });
    w.issued.opaqueTokens.push(String(body.access_token));
    w.issued.refreshTokens.push(String(body.refresh_token));
  };
}

export function registrationLoop(w: Workload): () => Promise<void> {
  let n = 0;
  return async () => {
    n += 1;
    const response = await fetch(`${w.registrationIssuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: `fault ${n} ${Math.random()}`,
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    });
    const body = (await response.json()) as Record<string, unknown>;
    expectStatus('registration', response.status, body, 201);
    w.issued.clients.push({ uri: String(body.registration_client_uri), token: String(body.registration_access_token), clientId: String(body.client_id) });
  };
}

/** Runs `work` over `items` with at most `limit` at once; returns the items for which it returned a string (a problem). */
export async function checkAll<T>(items: readonly T[], limit: number, work: (item: T) => Promise<string | undefined>): Promise<string[]> {
  const problems: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      const problem = await work(item).catch((error: unknown) => `threw ${String(error)}`);
      if (problem !== undefined) problems.push(problem);
    }
  }));
  return problems;
}

/** After the fault: every token, code and client the loops were given is checked. */
export async function auditIssued(w: Workload): Promise<{ lost: string[]; reusedCodes: string[] }> {
  const auth = basicAuth('demo-service', w.clientSecret);
  const introspectActive = async (token: string, kind: string): Promise<string | undefined> => {
    const response = await fetch(`${w.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
      body: new URLSearchParams({ token }).toString(),
    });
    const body = (await response.json()) as Record<string, unknown>;
    return response.status === 200 && body.active === true ? undefined : `${kind} ${response.status} ${JSON.stringify(body)}`;
  };
  const lost = [
    ...(await checkAll(w.issued.opaqueTokens, 6, (t) => introspectActive(t, 'access token'))),
    ...(await checkAll(w.issued.refreshTokens, 6, (t) => introspectActive(t, 'refresh token'))),
    ...(await checkAll(w.issued.clients, 6, async (c) => {
      const response = await fetch(c.uri, { headers: { authorization: `Bearer ${c.token}` } });
      return response.status === 200 ? undefined : `client ${c.clientId}: read answered ${response.status}`;
    })),
  ];
  // A code whose redemption failed in the fault redeems at most once afterwards, and what it gives is real.
  const unredeemed = await checkAll(w.issued.unredeemedCodes, 3, async (entry) => {
    const first = await redeemCode(w, entry);
    // Checked before the second try: a reuse revokes what the first use gave (RFC 6749 §4.1.2).
    const given = first.status === 200 ? await introspectActive(String(first.body.access_token), 'access token of a late redemption') : undefined;
    const second = await redeemCode(w, entry);
    if (second.status === 200) return first.status === 200 ? 'a code redeemed twice' : 'a code refused, then redeemed';
    if (first.status === 200) return given;
    return first.body.error === 'invalid_grant' ? undefined : `late redemption answered ${first.status} ${JSON.stringify(first.body)}`;
  });
  lost.push(...unredeemed);
  const reusedCodes = await checkAll(w.issued.redeemedCodes, 6, async (entry) => {
    const { status, body } = await redeemCode(w, entry);
    if (status === 200) return 'a redeemed code was redeemed again';
    // invalid_grant; or 503 when revoking what the first use issued (the reuse rule) outlasts
    // a short store timeout: either way the code gave nothing.
    return body.error === 'invalid_grant' || (status === 503 && body.error === 'temporarily_unavailable')
      ? undefined
      : `reuse answered ${status} ${JSON.stringify(body)}`;
  });
  return { lost, reusedCodes };
}

/** Statuses seen and each loop's successes, failures and first failure messages: for assertion messages. */
export function describeLoad(counts: Map<number, number>, stats: Map<string, LoopStats>): string {
  return JSON.stringify({
    statuses: Object.fromEntries(counts),
    loops: Object.fromEntries([...stats].map(([name, s]) => [name, { ok: s.ok, failed: s.failed, samples: s.samples.slice(0, 2) }])),
  });
}

export interface KillScenarioResult {
  /** 503s answered while the server was down. */
  unavailableWhileDown: number;
  /** Loops that had not succeeded again `recoveryBoundMs` after the server was back. */
  lagging: string[];
  violations: Violation[];
  lost: string[];
  reusedCodes: string[];
  issued: Issued;
  /** For assertion messages. */
  load: string;
}

/**
 * The store-kill scenario: a tenant with open registration, every loop running, the server
 * SIGKILLed for `downMs` and started again on the same port; then every loop must succeed
 * again within `recoveryBoundMs` (same Castellan, no restart), and what was issued is audited.
 */
export async function runKillScenario(
  castellan: { baseUrl: string; issuer: string; clientSecret: string; userPassword: string; createOpenTenant(): Promise<void> },
  server: KillableServer,
  options: { downMs: number; recoveryBoundMs: number },
): Promise<KillScenarioResult> {
  await castellan.createOpenTenant();
  const recorder = recordResponses(castellan.baseUrl);
  const w: Workload = {
    issuer: castellan.issuer,
    registrationIssuer: `${castellan.baseUrl}/t/open`,
    clientSecret: castellan.clientSecret,
    userPassword: castellan.userPassword,
    issued: newIssued(),
  };
  const loops = startLoops({
    'client_credentials (opaque)': { count: 3, body: clientCredentialsLoop(w, 'opaque') },
    'client_credentials (JWT)': { count: 2, body: clientCredentialsLoop(w, 'jwt') },
    introspection: { count: 3, body: introspectionLoop(w) },
    'code flow': { count: 2, body: codeFlowLoop(w) },
    registration: { count: 2, body: registrationLoop(w) },
  });
  try {
    const warm = await untilAllSucceedAfter(loops.stats, 0, 20_000);
    if (warm.length > 0) throw new Error(`loops never succeeded before the fault: ${warm.join(', ')}; ${describeLoad(recorder.counts, loops.stats)}`);
    const before = recorder.counts.get(503) ?? 0;
    await server.kill();
    await sleep(options.downMs);
    const unavailableWhileDown = (recorder.counts.get(503) ?? 0) - before;
    await server.restart();
    const lagging = await untilAllSucceedAfter(loops.stats, Date.now(), options.recoveryBoundMs);
    await sleep(500);
    await loops.stop();
    const load = describeLoad(recorder.counts, loops.stats);
    const { lost, reusedCodes } = await auditIssued(w);
    return { unavailableWhileDown, lagging, violations: recorder.violations, lost, reusedCodes, issued: w.issued, load };
  } finally {
    await loops.stop();
    recorder.restore();
  }
}

/**
 * What a store killed under load must leave behind: every kind of request works again on
 * the same process; the outage was felt (503s); no response broke the rules (5xx other than
 * 503, 503 without Retry-After, stacks); everything answered with 200/201 is still there;
 * and no redeemed code redeems again.
 */
export function expectKillSurvived(result: KillScenarioResult): void {
  expect(result.lagging, result.load).toEqual([]);
  expect(result.unavailableWhileDown, result.load).toBeGreaterThan(0);
  expect(result.violations).toEqual([]);
  expect(result.issued.opaqueTokens.length).toBeGreaterThan(0);
  expect(result.issued.refreshTokens.length).toBeGreaterThan(0);
  expect(result.issued.clients.length).toBeGreaterThan(0);
  expect(result.lost).toEqual([]);
  expect(result.issued.redeemedCodes.length).toBeGreaterThan(0);
  expect(result.reusedCodes).toEqual([]);
}

/** The tenant the registration loops use: open, with a limit the load never reaches. */
export const OPEN_TENANT = {
  id: 'open',
  displayName: 'Open registration',
  settings: { registration: { mode: 'open', limits: { perIpPerHour: 100_000 } } },
};
