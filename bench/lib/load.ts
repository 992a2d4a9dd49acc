import { readFile } from 'node:fs/promises';
import autocannon from 'autocannon';
import { serverPidOf } from './servers.ts';

/*
 * One load measurement with autocannon, and the interleaved rounds that make ratios honest
 * on a shared 2-core machine: every target of a scenario is measured once per round, in a
 * rotating order, so a burst of background load hits all of them alike; each ratio is taken
 * within one round and the median over rounds is reported.
 */

export interface LoadRequest {
  method: 'GET' | 'POST';
  /** Absolute loopback URL. */
  url: string;
  headers?: Record<string, string>;
  /** A fixed body, or one made per request (a fresh token to revoke, a random token to introspect). */
  body?: string | (() => string);
  /**
   * Requests that follow each other (refresh rotation): `first()` starts a chain (a fresh
   * refresh token), `next()` turns a response into the chain's next request body, or
   * undefined when the chain broke (then a fresh one starts). autocannon resets its
   * per-connection context before every request, so the bodies wait in one queue: with
   * one request in flight per connection there are always as many as connections.
   */
  chain?: {
    first: () => string;
    next: (status: number, body: string) => string | undefined;
  };
  /** Statuses that count as success; default 200. */
  okStatuses?: readonly number[];
  /** Sees every response (status and body), e.g. to keep the tokens a pool is filled with. */
  collect?: (status: number, body: string) => void;
}

export interface LoadOptions {
  connections: number;
  /** Seconds. */
  duration: number;
  /** Hard cap on requests, so a very fast target ends early instead of running away. */
  maxRequests?: number;
}

export interface Measurement {
  /** Successful responses per second. */
  rps: number;
  p50: number;
  p99: number;
  /** Connection errors, timeouts and unexpected statuses. */
  errors: number;
  requests: number;
  seconds: number;
  /**
   * CPU time (user + system) the server process spent per answered request during the
   * measurement, in µs: unlike req/s it hardly depends on what else the machine runs.
   */
  cpuUsPerRequest?: number;
}

const CLOCK_TICKS_PER_SECOND = 100;

/** utime + stime of a process in µs (/proc/<pid>/stat, Linux); undefined elsewhere or when gone. */
export async function processCpuUs(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return ((utime + stime) * 1_000_000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
}

/** Runs autocannon once against a loopback URL, bounded in time and request count. */
export async function measure(request: LoadRequest, options: LoadOptions): Promise<Measurement> {
  if (!isLoopback(request.url)) throw new Error(`benchmarks run on loopback only, not ${request.url}`);
  const url = new URL(request.url);
  const ok = new Set(request.okStatuses ?? [200]);
  let unexpected = 0;
  let okCount = 0;
  const body = request.body;
  const chain = request.chain;
  const dynamic = typeof body === 'function' || chain !== undefined;
  const queue: string[] = [];
  const pid = serverPidOf(url.origin);
  const cpuBefore = pid !== undefined ? await processCpuUs(pid) : undefined;
  const capped = options.maxRequests !== undefined;
  const started = performance.now();
  let lastAnswer = started;
  const result = await autocannon({
    url: url.origin,
    connections: options.connections,
    duration: options.duration,
    // autocannon notices that every connection is done only at its next sample tick (1 s by
    // default): a run that ends at its request cap would count that idle time.
    ...(capped ? { maxOverallRequests: options.maxRequests, sampleInt: 50 } : {}),
    timeout: 10,
    headers: request.headers ?? {},
    requests: [
      {
        method: request.method,
        path: `${url.pathname}${url.search}`,
        ...(typeof body === 'string' ? { body } : {}),
        ...(dynamic
          ? {
            setupRequest: (req: autocannon.Request) => {
              if (chain) return { ...req, body: queue.shift() ?? chain.first() };
              return { ...req, body: (body as () => string)() };
            },
          }
          : {}),
        onResponse: (status: number, responseBody: string) => {
          if (ok.has(status)) okCount += 1;
          else unexpected += 1;
          if (chain) queue.push(chain.next(status, responseBody) ?? chain.first());
          request.collect?.(status, responseBody);
          if (capped) lastAnswer = performance.now();
        },
      },
    ],
  });
  // A capped run lasts until its last answer (it may end long before its duration).
  const seconds = capped && lastAnswer > started ? Math.min(result.duration, (lastAnswer - started) / 1000) : result.duration > 0 ? result.duration : options.duration;
  const cpuAfter = pid !== undefined ? await processCpuUs(pid) : undefined;
  const answered = okCount + unexpected;
  return {
    rps: okCount / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + unexpected,
    requests: answered,
    seconds,
    ...(cpuBefore !== undefined && cpuAfter !== undefined && answered > 0 ? { cpuUsPerRequest: (cpuAfter - cpuBefore) / answered } : {}),
  };
}

export interface Target {
  /** e.g. "castellan memory", "bare oidc-provider". */
  name: string;
  /** One measurement: usually autocannon (httpTarget), or a custom loop (store, crypto, flows). */
  run: (options: LoadOptions) => Promise<Measurement>;
  /** Runs before each measurement of this target (refill a token pool); not timed. */
  before?: () => Promise<void>;
}

/** A target measured with autocannon. */
export function httpTarget(name: string, request: () => LoadRequest, before?: () => Promise<void>): Target {
  return { name, run: (options) => measure(request(), options), ...(before ? { before } : {}) };
}

/**
 * A custom closed loop: `inFlight` workers call `operation` back to back for the duration;
 * latencies in ms. For things autocannon cannot drive (a driver's insert, a multi-step flow).
 */
export async function loop(operation: () => Promise<void>, inFlight: number, options: LoadOptions): Promise<Measurement> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + options.duration * 1000;
  const cap = options.maxRequests ?? Number.POSITIVE_INFINITY;
  let issued = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < deadline && issued < cap) {
      issued += 1;
      const t = performance.now();
      try {
        await operation();
        latencies.push(performance.now() - t);
      } catch {
        errors += 1;
      }
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return {
    rps: latencies.length / seconds,
    p50: Math.round(at(0.5) * 100) / 100,
    p99: Math.round(at(0.99) * 100) / 100,
    errors,
    requests: latencies.length + errors,
    seconds,
  };
}

export interface TargetResult {
  name: string;
  rounds: Measurement[];
  /** Medians over rounds (errors: sum). */
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
  /** Median server CPU µs per request, where measured. */
  cpuUsPerRequest?: number;
}

export interface InterleavedOptions extends LoadOptions {
  rounds: number;
  /** Seconds of unrecorded warm-up per target before the first round (JIT, pools, caches). */
  warmup: number;
  log: (line: string) => void;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? Number.NaN) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** Measures every target once per round, rotating the order each round. */
export async function interleaved(targets: readonly Target[], options: InterleavedOptions): Promise<TargetResult[]> {
  const rounds = new Map<string, Measurement[]>(targets.map((t) => [t.name, []]));
  if (options.warmup > 0) {
    for (const target of targets) {
      await target.before?.();
      await target.run({ ...options, duration: options.warmup });
    }
  }
  for (let round = 0; round < options.rounds; round += 1) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length] as Target);
    for (const target of order) {
      await target.before?.();
      const m = await target.run(options);
      rounds.get(target.name)?.push(m);
      const cpu = m.cpuUsPerRequest !== undefined ? `, server CPU ${m.cpuUsPerRequest.toFixed(0)} µs/req` : '';
      options.log(`    round ${round + 1} ${target.name}: ${m.rps.toFixed(0)}/s, p50 ${m.p50} ms, p99 ${m.p99} ms, errors ${m.errors}${cpu}`);
    }
  }
  return targets.map((target) => {
    const list = rounds.get(target.name) ?? [];
    const cpu = list.flatMap((m) => (m.cpuUsPerRequest !== undefined ? [m.cpuUsPerRequest] : []));
    return {
      name: target.name,
      rounds: list,
      rps: median(list.map((m) => m.rps)),
      p50: median(list.map((m) => m.p50)),
      p99: median(list.map((m) => m.p99)),
      errors: list.reduce((sum, m) => sum + m.errors, 0),
      requests: list.reduce((sum, m) => sum + m.requests, 0),
      ...(cpu.length ? { cpuUsPerRequest: median(cpu) } : {}),
    };
  });
}

/**
 * Baseline CPU per request / target CPU per request, median over rounds: the rate the target
 * would reach, relative to the baseline, on equal free CPU. NaN where either is not measured.
 */
export function cpuRatio(target: TargetResult, baseline: TargetResult): number {
  const ratios = target.rounds.flatMap((m, i) => {
    const b = baseline.rounds[i]?.cpuUsPerRequest;
    return b !== undefined && m.cpuUsPerRequest !== undefined && m.cpuUsPerRequest > 0 ? [b / m.cpuUsPerRequest] : [];
  });
  return median(ratios);
}

/** Median over rounds of target/baseline req/s, each ratio taken within one round. */
export function roundRatio(target: TargetResult, baseline: TargetResult): number {
  const ratios = target.rounds.flatMap((m, i) => {
    const b = baseline.rounds[i];
    return b && b.rps > 0 ? [m.rps / b.rps] : [];
  });
  return median(ratios);
}
