import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { decodeProtectedHeader, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { MongoClient } from 'mongodb';
import { runCodeFlow } from '../test/support/oauth.ts';
import {
  baselineAuth,
  BenchContext,
  castellanAuth,
  DEMO_EXCHANGE_AUDIENCE,
  DEMO_JWT_RESOURCE,
  DEMO_OPAQUE_RESOURCE,
  REDIRECT_URI,
} from './lib/context.ts';
import { cpuRatio, httpTarget, interleaved, loop, measure, roundRatio, type LoadRequest, type Target, type TargetResult } from './lib/load.ts';
import { check, type Check, type Row } from './lib/results.ts';
import type { BenchServer, CastellanServer, CastellanStorage } from './lib/servers.ts';
import { TokenPool } from './lib/token-pool.ts';

/*
 * The scenarios. Each measures Castellan on the storages asked for (embedded memory store;
 * production = FerretDB + Redis) interleaved with its baseline in the same rounds, and
 * states the README's targets as checks (warnings, never failures).
 */

export interface ScenarioOutput {
  rows: Row[];
  checks: Check[];
  notes: string[];
}

export interface Scenario {
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<ScenarioOutput>;
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const CC_JWT = form({ grant_type: 'client_credentials', resource: DEMO_JWT_RESOURCE, scope: 'notes:read' });
const CC_OPAQUE = form({ grant_type: 'client_credentials', resource: DEMO_OPAQUE_RESOURCE, scope: 'reports:read' });
const storageName = (storage: CastellanStorage) => `castellan ${storage}`;
const BARE = 'bare oidc-provider';

function interleavedOptions(ctx: BenchContext, overrides: { connections?: number } = {}) {
  return {
    duration: ctx.options.duration,
    rounds: ctx.options.rounds,
    warmup: ctx.options.warmup,
    connections: overrides.connections ?? ctx.options.connections,
    log: ctx.log,
  };
}

/** Rows from interleaved results; `baseline` names the target ratios are taken against. */
function rowsOf(results: TargetResult[], baseline: string | undefined, unit?: string): Row[] {
  const base = results.find((r) => r.name === baseline);
  return results.map((r) => ({
    target: r.name,
    rps: r.rps,
    p50: r.p50,
    p99: r.p99,
    errors: r.errors,
    requests: r.requests,
    ...(unit ? { unit } : {}),
    ...(base && r !== base ? { baseline: base.name, ratio: roundRatio(r, base) } : {}),
    ...(r.cpuUsPerRequest !== undefined ? { cpuUs: r.cpuUsPerRequest } : {}),
    ...(base && r !== base && Number.isFinite(cpuRatio(r, base)) ? { cpuRatio: cpuRatio(r, base) } : {}),
  }));
}

const ratioOf = (rows: Row[], target: string) => rows.find((r) => r.target === target)?.ratio ?? Number.NaN;

async function postForm(url: string, body: string, authorization?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', headers: { ...FORM, ...(authorization ? { authorization } : {}) }, body });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { text };
  }
  return { status: response.status, json };
}

/** Issues `count` access tokens, 20 requests in flight. */
async function issueTokens(tokenUrl: string, authorization: string, body: string, count: number): Promise<string[]> {
  const tokens: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: 20 }, async () => {
    while (next < count) {
      next += 1;
      const { status, json } = await postForm(tokenUrl, body, authorization);
      if (status !== 200 || typeof json.access_token !== 'string') throw new Error(`token request failed: ${status} ${JSON.stringify(json)}`);
      tokens.push(json.access_token);
    }
  }));
  return tokens;
}

const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)] as T;

interface Endpoint {
  name: string;
  /** Token endpoint URL; the issuer's other endpoints are derived from it. */
  token: string;
  introspection: string;
  revocation: string;
  registration: string;
  jwks: string;
  metadata: string;
  auth: string;
}

function castellanEndpoint(server: CastellanServer, storage: CastellanStorage): Endpoint {
  const t = `${server.url}/t/demo`;
  return {
    name: storageName(storage),
    token: `${t}/token`,
    introspection: `${t}/token/introspection`,
    revocation: `${t}/token/revocation`,
    registration: `${server.url}/t/bench/reg`,
    jwks: `${t}/jwks`,
    metadata: `${server.url}/.well-known/oauth-authorization-server/t/demo`,
    auth: castellanAuth(server),
  };
}

function bareEndpoint(server: BenchServer): Endpoint {
  return {
    name: BARE,
    token: `${server.url}/token`,
    introspection: `${server.url}/token/introspection`,
    revocation: `${server.url}/token/revocation`,
    registration: `${server.url}/reg`,
    jwks: `${server.url}/jwks`,
    metadata: `${server.url}/.well-known/openid-configuration`,
    auth: baselineAuth,
  };
}

/** Castellan on each storage asked for, then the bare oidc-provider baseline. */
const BARE_IN_KOA = 'bare oidc-provider inside Koa (mount cost)';

/** Adds the bare provider served from inside an outer Koa app: Koa around Koa, nothing else. */
async function withMountedBare(ctx: BenchContext, list: Endpoint[]): Promise<Endpoint[]> {
  return [...list, { ...bareEndpoint(await ctx.bareInKoa()), name: BARE_IN_KOA }];
}

/** The name of the `--compare` checkout's rows. */
export const COMPARED = (storage: CastellanStorage) => `${storageName(storage)} (compared checkout)`;

async function endpoints(ctx: BenchContext, withBare = true): Promise<Endpoint[]> {
  const list: Endpoint[] = [];
  for (const storage of ctx.options.storages) {
    list.push(castellanEndpoint(await ctx.castellan(storage), storage));
    const compareDir = ctx.options.compareDir;
    if (compareDir !== undefined) list.push({ ...castellanEndpoint(await ctx.castellan(storage, 'shared', compareDir), storage), name: COMPARED(storage) });
  }
  if (withBare) list.push(bareEndpoint(await ctx.bare()));
  return list;
}

const post = (url: string, auth: string | undefined, body: LoadRequest['body']): LoadRequest => ({
  method: 'POST',
  url,
  headers: { ...FORM, ...(auth ? { authorization: auth } : {}) },
  ...(body !== undefined ? { body } : {}),
});

function productionCheck(ctx: BenchContext, rows: Row[], what: string, limit = 0.9): Check[] {
  if (!ctx.options.storages.includes('production')) return [];
  return [check(`${what} on production stores ≥ ${limit}× bare oidc-provider`, ratioOf(rows, storageName('production')), '>=', limit, (v) => `${v}×`)];
}

/** FerretDB's raw insert rate, one small document per operation, as a load target. */
async function ferretInsertTarget(ctx: BenchContext): Promise<{ target: Target; close: () => Promise<void> }> {
  const stores = await ctx.stores();
  const client = new MongoClient(stores.mongoUrl);
  await client.connect();
  const collection = client.db(`bench_raw_${randomBytes(4).toString('hex')}`).collection('inserts');
  const target: Target = {
    name: 'FerretDB raw insertOne',
    run: (options) => loop(async () => {
      await collection.insertOne({ _id: randomBytes(16).toString('base64url') as never, ns: 'demo', payload: randomBytes(300).toString('base64') });
    }, 50, options),
  };
  return { target, close: () => client.close() };
}

const clientCredentialsJwt: Scenario = {
  name: 'cc-jwt',
  title: 'client_credentials → JWT access token (ES256)',
  async run(ctx) {
    const list = await withMountedBare(ctx, await endpoints(ctx));
    const targets = list.map((e) => httpTarget(e.name, () => post(e.token, e.auth, CC_JWT)));
    const rows = rowsOf(await interleaved(targets, interleavedOptions(ctx)), BARE);
    const checks = productionCheck(ctx, rows, 'JWT issuance');
    const first = list[0];
    if (first) {
      const [token] = await issueTokens(first.token, first.auth, CC_JWT, 1);
      const alg = token ? decodeProtectedHeader(token).alg : undefined;
      checks.push({ target: 'JWT access tokens signed with ES256 by default', measured: `alg ${alg ?? 'none'}`, ok: alg === 'ES256' });
    }
    return { rows, checks, notes: [] };
  },
};

const clientCredentialsOpaque: Scenario = {
  name: 'cc-opaque',
  title: 'client_credentials → opaque access token',
  async run(ctx) {
    const list = await withMountedBare(ctx, await endpoints(ctx));
    const targets = list.map((e) => httpTarget(e.name, () => post(e.token, e.auth, CC_OPAQUE)));
    const oauth2 = await ctx.oauth2();
    targets.push(httpTarget('@node-oauth/oauth2-server', () => post(`${oauth2.url}/token`, baselineAuth, form({ grant_type: 'client_credentials', scope: 'reports:read' }))));
    const koa = await ctx.koa();
    targets.push(httpTarget('bare Koa (POST, framework ceiling)', () => post(`${koa.url}/token`, baselineAuth, CC_OPAQUE)));
    const production = ctx.options.storages.includes('production');
    const raw = production ? await ferretInsertTarget(ctx) : undefined;
    if (raw) targets.push(raw.target);
    try {
      const results = await interleaved(targets, interleavedOptions(ctx));
      const rows = rowsOf(results, BARE);
      const checks = productionCheck(ctx, rows, 'Opaque token issuance');
      if (raw) {
        const prod = results.find((r) => r.name === storageName('production'));
        const ferret = results.find((r) => r.name === raw.target.name);
        const ratio = prod && ferret ? roundRatio(prod, ferret) : Number.NaN;
        checks.push(check('Opaque issuance on production stores ≥ 0.8× FerretDB raw insert rate (STORES.md)', ratio, '>=', 0.8, (v) => `${v}×`));
        const row = rows.find((r) => r.target === storageName('production'));
        if (row) rows.push({ ...row, target: `${row.target} vs FerretDB insert`, baseline: raw.target.name, ratio });
      }
      return { rows, checks, notes: ['oauth2-server and Koa rows are ratios against bare oidc-provider too (the peer and the ceiling).'] };
    } finally {
      await raw?.close();
    }
  },
};

const introspection: Scenario = {
  name: 'introspection',
  title: 'introspection of an opaque access token',
  async run(ctx) {
    const list = await withMountedBare(ctx, await endpoints(ctx));
    const targets: Target[] = [];
    for (const e of list) {
      const tokens = await issueTokens(e.token, e.auth, CC_OPAQUE, 200);
      targets.push(httpTarget(e.name, () => ({ ...post(e.introspection, e.auth, () => form({ token: pick(tokens) })) })));
    }
    const rows = rowsOf(await interleaved(targets, interleavedOptions(ctx)), BARE);
    const checks = productionCheck(ctx, rows, 'Introspection');
    const prod = rows.find((r) => r.target === storageName('production'));
    if (prod) checks.push(check(`Introspection p99 ≤ 5 ms at ${ctx.options.connections} connections (production stores)`, prod.p99, '<=', 5, (v) => `${v} ms`));
    return { rows, checks, notes: ['Each request introspects one of 200 live tokens picked at random.'] };
  },
};

const LIVE = (name: string) => `${name}: live`;
const REPEATED = (name: string) => `${name}: repeated`;
/** The most live tokens a pool is topped up to, and the floor (also covers the connections). */
const POOL_CAP = 50_000;
const POOL_MIN = 200;

/**
 * Issues up to `count` opaque tokens with autocannon (50 in flight), for at most `seconds`
 * (FerretDB stores about 1,500 a second here, and Castellan issues fewer): the live pool.
 */
async function issuePool(e: Endpoint, count: number, seconds: number, connections: number): Promise<{ tokens: string[]; seconds: number }> {
  const tokens: string[] = [];
  const m = await measure({
    ...post(e.token, e.auth, CC_OPAQUE),
    collect: (status, text) => {
      if (status !== 200) return;
      const token = (JSON.parse(text) as { access_token?: unknown }).access_token;
      if (typeof token === 'string') tokens.push(token);
    },
  }, { connections: Math.max(1, Math.min(connections, count)), duration: seconds, maxRequests: count });
  return { tokens, seconds: m.seconds };
}

const revocation: Scenario = {
  name: 'revocation',
  title: 'revocation of an opaque access token (live, and repeated)',
  async run(ctx) {
    const list = await endpoints(ctx);
    const { duration, connections } = ctx.options;
    // Issuing is bounded in time: on FerretDB a pool for a whole measurement may take longer
    // to issue than to revoke; a smaller pool then ends its measurement early, still live.
    const issueSeconds = Math.max(5, 2 * duration);
    const pools = new Map<string, TokenPool>();
    const live: Target[] = [];
    const repeated: Target[] = [];
    for (const e of list) {
      const production = e.name.startsWith(storageName('production'));
      const pool = new TokenPool({ initialRate: production ? 500 : 5000, duration, margin: 1.25, min: Math.max(POOL_MIN, 2 * connections), cap: POOL_CAP });
      pools.set(e.name, pool);
      const request = post(e.revocation, e.auth, () => form({ token: pool.take(), token_type_hint: 'access_token' }));
      live.push({
        name: LIVE(e.name),
        before: async () => {
          const missing = pool.goal() - pool.remaining;
          if (missing <= 0) return;
          const issued = await issuePool(e, missing, issueSeconds, connections);
          pool.add(issued.tokens, issued.seconds);
        },
        run: async (options) => {
          const size = pool.remaining;
          // Never more requests than live tokens (autocannon shares the cap among connections).
          const inFlight = Math.max(1, Math.min(options.connections, size));
          const m = await measure(request, { ...options, connections: inFlight, maxRequests: size });
          pool.settle(m, size, options.duration, inFlight);
          return m;
        },
      });
      repeated.push({
        name: REPEATED(e.name),
        before: async () => {
          if (pool.revokedCount > 0) return;
          // Not measured live yet (no warm-up): revoke a few tokens first.
          const { tokens } = await issuePool(e, POOL_MIN, issueSeconds, connections);
          for (const token of tokens) {
            const { status } = await postForm(e.revocation, form({ token, token_type_hint: 'access_token' }), e.auth);
            if (status !== 200) throw new Error(`revocation failed: ${status}`);
          }
          pool.addRevoked(tokens);
        },
        run: (options) => measure(post(e.revocation, e.auth, () => form({ token: pool.pickRevoked(), token_type_hint: 'access_token' })), options),
      });
    }
    const results = await interleaved([...live, ...repeated], interleavedOptions(ctx));
    const liveRows = rowsOf(results.filter((r) => live.some((t) => t.name === r.name)), LIVE(BARE));
    const repeatedRows = rowsOf(results.filter((r) => repeated.some((t) => t.name === r.name)), REPEATED(BARE));
    const rows = [...liveRows, ...repeatedRows];
    const checks = ctx.options.storages.includes('production')
      ? [check('Revocation of live tokens on production stores ≥ 0.9× bare oidc-provider', ratioOf(rows, LIVE(storageName('production'))), '>=', 0.9, (v) => `${v}×`)]
      : [];
    const notes = [
      `live: each request revokes a token never revoked. Before each measurement the target's pool is topped up with fresh opaque tokens (not timed) to 1.25 × its previous rate × ${duration} s (at least ${Math.max(POOL_MIN, 2 * connections)}, at most ${POOL_CAP.toLocaleString('en-US')}, issuing for at most ${issueSeconds} s); the measurement stops when the pool is used up. repeated: each request revokes a token revoked before (Castellan on the production stores: a Redis tombstone lookup). Live rows are compared with bare live, repeated with bare repeated.`,
      ...list.map((e) => pools.get(e.name)?.summary(e.name) ?? ''),
    ];
    return { rows, checks, notes };
  },
};

/** Castellan on each chosen storage, and the `--compare` checkout beside each, named as their rows. */
async function castellanServers(ctx: BenchContext): Promise<Array<{ name: string; server: CastellanServer }>> {
  const servers: Array<{ name: string; server: CastellanServer }> = [];
  for (const storage of ctx.options.storages) {
    servers.push({ name: storageName(storage), server: await ctx.castellan(storage) });
    if (ctx.options.compareDir !== undefined) servers.push({ name: COMPARED(storage), server: await ctx.castellan(storage, 'shared', ctx.options.compareDir) });
  }
  return servers;
}

/** A user's JWT access token for the notes resource, from a scripted code flow. */
async function userTokens(server: CastellanServer, scope: string, resource?: string): Promise<Record<string, unknown>> {
  const flow = await runCodeFlow({
    issuer: server.issuer,
    clientId: 'demo-agent',
    redirectUri: REDIRECT_URI,
    scope,
    ...(resource ? { resource } : {}),
    login: 'demo',
    password: server.userPassword,
    extra: { prompt: 'consent' },
  });
  const { status, json } = await postForm(`${server.url}/t/demo/token`, form({
    grant_type: 'authorization_code', client_id: 'demo-agent', code: flow.code, redirect_uri: REDIRECT_URI, code_verifier: flow.verifier,
  }));
  if (status !== 200) throw new Error(`code redemption failed: ${status} ${JSON.stringify(json)}`);
  return json;
}

const tokenExchange: Scenario = {
  name: 'token-exchange',
  title: 'token exchange (user access token → audience-bound JWT with act)',
  async run(ctx) {
    const targets: Target[] = [];
    for (const { name, server } of await castellanServers(ctx)) {
      const subject = String((await userTokens(server, 'openid notes:read', DEMO_JWT_RESOURCE)).access_token);
      const body = form({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subject,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        audience: DEMO_EXCHANGE_AUDIENCE,
      });
      const probe = await postForm(`${server.url}/t/demo/token`, body, castellanAuth(server));
      if (probe.status !== 200) throw new Error(`token exchange failed: ${probe.status} ${JSON.stringify(probe.json)}`);
      targets.push(httpTarget(name, () => post(`${server.url}/t/demo/token`, castellanAuth(server), body)));
    }
    const bare = bareEndpoint(await ctx.bare());
    const baselineName = `${BARE} client_credentials JWT`;
    targets.push(httpTarget(baselineName, () => post(bare.token, bare.auth, CC_JWT)));
    const rows = rowsOf(await interleaved(targets, interleavedOptions(ctx)), baselineName);
    return {
      rows,
      checks: [],
      notes: ['oidc-provider has no token exchange grant: the baseline is its nearest work, issuing one ES256 JWT at the token endpoint. No target is stated for this ratio.'],
    };
  },
};

const refreshRotation: Scenario = {
  name: 'refresh',
  title: 'refresh token rotation (public client, each connection follows its own chain)',
  async run(ctx) {
    const connections = Math.min(ctx.options.connections, 10);
    // A chain that breaks (an error) is replaced from the spares; more breaks show as errors.
    const spare = 5;
    const targets: Target[] = [];
    const chainOf = (name: string, url: string, clientId: string, starts: () => Promise<string[]>): Target => {
      let pool: string[] = [];
      let taken = 0;
      const body = (token: string) => form({ grant_type: 'refresh_token', client_id: clientId, refresh_token: token });
      return httpTarget(name, () => ({
        method: 'POST',
        url,
        headers: FORM,
        chain: {
          first: () => body(pool[taken++] ?? 'chain-pool-exhausted'),
          next: (status, text) => {
            if (status !== 200) return undefined;
            const next = (JSON.parse(text) as { refresh_token?: string }).refresh_token;
            return next ? body(next) : undefined;
          },
        },
      }), async () => {
        pool = await starts();
        taken = 0;
      });
    };
    for (const { name, server } of await castellanServers(ctx)) {
      targets.push(chainOf(name, `${server.url}/t/demo/token`, 'demo-agent', async () => {
        const tokens: string[] = [];
        for (let i = 0; i < connections + spare; i += 1) tokens.push(String((await userTokens(server, 'openid offline_access')).refresh_token));
        return tokens;
      }));
    }
    const bare = await ctx.bare();
    targets.push(chainOf(BARE, `${bare.url}/token`, 'bench-agent', async () => {
      const response = await fetch(`${bare.controlUrl}/refresh-tokens?n=${connections + spare}`, { method: 'POST' });
      if (!response.ok) throw new Error(`seeding refresh tokens failed: ${response.status} ${await response.text()}`);
      return (await response.json()) as string[];
    }));
    const rows = rowsOf(await interleaved(targets, interleavedOptions(ctx, { connections })), BARE);
    return {
      rows,
      checks: [],
      notes: [
        `${connections} connections, each rotating its own refresh token chain (a fresh chain per measurement: one scripted sign-in each on Castellan, grants seeded through oidc-provider's models on the baseline).`,
        'Castellan also keeps each rotated pair sealed for the public-client retry grace (ttl.refreshRetryGrace); the baseline has no such step.',
      ],
    };
  },
};

const registration: Scenario = {
  name: 'dcr',
  title: 'dynamic client registration of a public client',
  async run(ctx) {
    const list = await endpoints(ctx);
    const body = JSON.stringify({
      client_name: 'bench agent',
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    });
    const targets = list.map((e) => httpTarget(e.name, () => ({
      method: 'POST' as const, url: e.registration, headers: { 'content-type': 'application/json' }, body, okStatuses: [201],
    })));
    const rows = rowsOf(await interleaved(targets, interleavedOptions(ctx)), BARE);
    return {
      rows,
      checks: [],
      notes: ['Castellan registers at a tenant "bench" (from CASTELLAN_CONFIG_FILE) whose registration limits are raised to 100,000 per address per hour; the demo tenant would answer 429 after 20.'],
    };
  },
};

const codeFlow: Scenario = {
  name: 'code-flow',
  title: 'full auth code + PKCE round trip (scripted login and consent posts, code redemption)',
  async run(ctx) {
    const targets: Target[] = [];
    const inFlight = 5;
    for (const storage of ctx.options.storages) {
      const server = await ctx.castellan(storage);
      targets.push({
        name: storageName(storage),
        run: (options) => loop(async () => {
          await userTokens(server, 'openid notes:read', DEMO_JWT_RESOURCE);
        }, inFlight, options),
      });
    }
    const rows = rowsOf(await interleaved(targets, interleavedOptions(ctx)), undefined, 'flows/s');
    return {
      rows,
      checks: [],
      notes: [
        `${inFlight} flows in flight, each: /auth, login page, login post (argon2id), consent page, consent post, redirect, code redemption (7-8 HTTP requests); latency is per whole flow.`,
        'No baseline: bare oidc-provider has no login or consent pages of its own (devInteractions are for development only).',
      ],
    };
  },
};

function getScenario(name: string, title: string, path: (e: Endpoint) => string, withKoa: boolean): Scenario {
  return {
    name,
    title,
    async run(ctx) {
      const list = await endpoints(ctx);
      const targets = list.map((e) => httpTarget(e.name, () => ({ method: 'GET' as const, url: path(e) })));
      if (withKoa) {
        const koa = await ctx.koa();
        targets.push(httpTarget('bare Koa (GET, framework ceiling)', () => ({ method: 'GET', url: `${koa.url}/jwks` })));
      }
      const rows = rowsOf(await interleaved(targets, interleavedOptions(ctx)), BARE);
      return { rows, checks: [], notes: [] };
    },
  };
}

const jwksGet = getScenario('jwks', 'JWKS GET', (e) => e.jwks, true);
const metadataGet = getScenario('metadata', 'authorization server metadata GET', (e) => e.metadata, false);

function mcpScenario(kind: 'notes' | 'reports'): Scenario {
  const jwt = kind === 'notes';
  return {
    name: jwt ? 'mcp-jwt' : 'mcp-introspection',
    title: jwt
      ? 'MCP tool call on the notes server (JWT validated offline)'
      : 'MCP tool call on the reports server (opaque token introspected at Castellan on every call)',
    async run(ctx) {
      const targets: Target[] = [];
      for (const storage of ctx.options.storages) {
        const castellan = await ctx.castellan(storage);
        const mcp = await ctx.mcpServer(kind, storage);
        const [token] = await issueTokens(`${castellan.url}/t/demo/token`, castellanAuth(castellan), jwt ? CC_JWT : CC_OPAQUE, 1);
        const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: jwt ? 'list_notes' : 'list_reports', arguments: {} } });
        const request: LoadRequest = {
          method: 'POST',
          url: `${mcp.url}/${jwt ? 'mcp' : 'api'}`,
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token ?? ''}` },
          body,
        };
        const probe = await fetch(request.url, { method: 'POST', headers: request.headers ?? {}, body });
        const text = await probe.text();
        if (probe.status !== 200) throw new Error(`MCP tool call failed: ${probe.status} ${text.slice(0, 300)}`);
        targets.push(httpTarget(`${kind} MCP server, tokens from ${storageName(storage)}`, () => request));
      }
      const rows = rowsOf(await interleaved(targets, interleavedOptions(ctx)), undefined);
      return {
        rows,
        checks: [],
        notes: [
          'The example server (mcp-examples/) runs the MCP SDK\'s stateless Streamable HTTP transport: one tools/call per request, no session.',
          ...(jwt ? [] : ['INTROSPECTION_CACHE_SECONDS=0: every call introspects, so this measures Castellan\'s introspection behind a resource server.']),
          'No baseline: the ratio that matters here is the introspection and JWT scenarios above.',
        ],
      };
    },
  };
}

const ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;

const crypto: Scenario = {
  name: 'crypto',
  title: 'jose raw sign and verify (the crypto limit per core)',
  async run(ctx) {
    const targets: Target[] = [];
    for (const alg of ALGORITHMS) {
      const { privateKey, publicKey } = await generateKeyPair(alg);
      const claims = { iss: 'https://issuer.example', sub: 'bench', aud: DEMO_JWT_RESOURCE, client_id: 'bench', scope: 'notes:read' };
      const sign = () => new SignJWT(claims).setProtectedHeader({ alg, typ: 'at+jwt', kid: 'k' }).setIssuedAt().setExpirationTime('1h').setJti(randomBytes(16).toString('base64url')).sign(privateKey);
      const token = await sign();
      targets.push({ name: `${alg} sign`, run: (options) => loop(async () => void (await sign()), 1, options) });
      targets.push({ name: `${alg} verify`, run: (options) => loop(async () => void (await jwtVerify(token, publicKey)), 1, options) });
    }
    const results = await interleaved(targets, { ...interleavedOptions(ctx), rounds: 1, warmup: Math.min(ctx.options.warmup, 0.3), duration: Math.min(ctx.options.duration, 1) });
    return {
      rows: rowsOf(results, undefined, 'ops/s'),
      checks: [],
      notes: ['One operation at a time in the bench process (one core); p50/p99 are per operation in ms. Compare with the JWT issuance rate: the token endpoint signs once per request.'],
    };
  },
};

const storesRaw: Scenario = {
  name: 'stores',
  title: 'raw store rates (FerretDB and Redis, one client, 50 operations in flight)',
  async run(ctx) {
    const stores = await ctx.stores();
    const mongo = new MongoClient(stores.mongoUrl);
    await mongo.connect();
    const redis = new Redis(stores.redisUrl);
    const prefix = `bench-raw-${randomBytes(4).toString('hex')}`;
    try {
      const collection = mongo.db(`bench_raw_${randomBytes(4).toString('hex')}`).collection<{ _id: string; payload: string }>('records');
      const ids: string[] = [];
      const payload = randomBytes(300).toString('base64');
      const targets: Target[] = [
        { name: 'FerretDB insertOne', run: (o) => loop(async () => {
          const id = randomBytes(16).toString('base64url');
          await collection.insertOne({ _id: id, payload });
          if (ids.length < 10_000) ids.push(id);
        }, 50, o) },
        { name: 'FerretDB findOne by _id', run: (o) => loop(async () => void (await collection.findOne({ _id: pick(ids) })), 50, o) },
        // What a live revocation costs the store: a delete by _id (a scan, like the find).
        { name: 'FerretDB deleteOne by _id', run: (o) => loop(async () => {
          const id = ids.length > 1_000 ? ids.pop() : undefined;
          await collection.deleteOne({ _id: id ?? randomBytes(16).toString('base64url') });
        }, 50, o) },
        { name: 'Redis SET EX', run: (o) => loop(async () => void (await redis.set(`${prefix}:${randomBytes(8).toString('hex')}`, payload, 'EX', 60)), 50, o) },
        { name: 'Redis GET', run: (o) => loop(async () => void (await redis.get(`${prefix}:missing`)), 50, o) },
      ];
      const results = await interleaved(targets, { ...interleavedOptions(ctx), rounds: Math.min(ctx.options.rounds, 2) });
      // How FerretDB answers a find by _id: its plan shows whether the lookup scans.
      const explained = (await collection.find({ _id: ids[0] ?? '' }).explain()) as { queryPlanner?: { Plan?: unknown } };
      const count = await collection.countDocuments();
      return {
        rows: rowsOf(results, undefined, 'ops/s'),
        checks: [],
        notes: [
          'Compare with STORES.md: FerretDB about 1,400 inserts/s and 1,000–2,500 finds/s, Redis about 99,000 SET/s.',
          `FerretDB's plan for find({_id}) on ${count.toLocaleString('en-US')} documents: ${JSON.stringify(explained.queryPlanner?.Plan ?? explained.queryPlanner ?? 'none')} (a SCAN reads the whole collection: finds by _id slow down as it grows).`,
        ],
      };
    } finally {
      redis.disconnect();
      await mongo.close();
    }
  },
};

export const SCENARIOS: readonly Scenario[] = [
  storesRaw,
  crypto,
  clientCredentialsJwt,
  clientCredentialsOpaque,
  introspection,
  revocation,
  tokenExchange,
  refreshRotation,
  registration,
  codeFlow,
  jwksGet,
  metadataGet,
  mcpScenario('notes'),
  mcpScenario('reports'),
];
