import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { basicAuth } from '../../test/support/oauth.ts';
import type { InterleavedOptions } from './load.ts';
import {
  BASELINE_SECRET,
  registerStop,
  startBareKoa,
  startBareOidc,
  startCastellanServer,
  startMcpExample,
  startOauth2Server,
  startStores,
  type BenchServer,
  type CastellanServer,
  type CastellanStorage,
  type Stores,
} from './servers.ts';

/*
 * What scenarios share: run options and the servers, each started on first use and kept
 * for the rest of the run (an idle server costs nothing), all stopped by stopAll().
 */

export interface RunOptions {
  /** Seconds per measurement. */
  duration: number;
  rounds: number;
  warmup: number;
  connections: number;
  /** Which Castellan storages to measure. */
  storages: CastellanStorage[];
  /** Growth sizes (stored records). */
  sizes: number[];
  /** Most records seeded into FerretDB in the growth runs (the rest go to Redis). */
  ferretdbMax: number;
  /** node --cpu-prof for Castellan and the bare baseline; profiles land in this directory. */
  profileDir: string | undefined;
  /**
   * Another checkout of Castellan (e.g. `git archive <commit>` of the code before a change,
   * with node_modules linked) measured as one more target per storage, in the same rounds:
   * a before/after comparison that shares the run's background load.
   */
  compareDir?: string | undefined;
}

export const DEMO_JWT_RESOURCE = 'http://localhost:3001/mcp';
export const DEMO_OPAQUE_RESOURCE = 'http://localhost:3002/api';
export const DEMO_EXCHANGE_AUDIENCE = 'http://localhost:3004/api';
export const REDIRECT_URI = 'http://127.0.0.1/callback';

/** A second tenant for registration: open, with abuse limits raised so a benchmark is not a flood. */
export const BENCH_TENANT_SETTINGS = {
  displayName: 'Benchmark registration tenant',
  scopes: ['notes:read'],
  registration: { mode: 'open', limits: { perIpPerHour: 100_000, maxClients: 10_000_000 } },
};

function memo<T>(start: () => Promise<T>): () => Promise<T> {
  let started: Promise<T> | undefined;
  return () => {
    started ??= start();
    return started;
  };
}

export class BenchContext {
  readonly options: RunOptions;
  readonly log: (line: string) => void;
  readonly #castellans = new Map<string, Promise<CastellanServer>>();
  readonly #mcp = new Map<string, Promise<BenchServer>>();
  /** Castellans and MCP servers live for one scenario: stored tokens and clients do not carry over. */
  #scenario = 'none';
  #configFile: Promise<string> | undefined;

  constructor(options: RunOptions, log: (line: string) => void) {
    this.options = options;
    this.log = log;
  }

  readonly stores: () => Promise<Stores> = memo(() => {
    this.log('  starting FerretDB and Redis');
    return startStores(this.log);
  });

  readonly bare: () => Promise<BenchServer> = memo(() => startBareOidc(this.#profileArgs('bare-oidc')));
  /** The same bare provider inside an outer Koa app: the cost of Koa around Koa alone. */
  readonly bareInKoa: () => Promise<BenchServer> = memo(() => startBareOidc(this.#profileArgs('bare-oidc-in-koa'), 'koa'));
  readonly oauth2: () => Promise<BenchServer> = memo(() => startOauth2Server());
  readonly koa: () => Promise<BenchServer> = memo(() => startBareKoa());

  #profileArgs(name: string): string[] {
    const dir = this.options.profileDir;
    return dir ? ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', `${name}-${Date.now()}.cpuprofile`] : [];
  }

  #config(): Promise<string> {
    this.#configFile ??= (async () => {
      const path = join(tmpdir(), `castellan-bench-${process.pid}.json`);
      await writeFile(path, JSON.stringify({ tenants: { bench: BENCH_TENANT_SETTINGS } }));
      registerStop(() => rm(path, { force: true }));
      return path;
    })();
    return this.#configFile;
  }

  beginScenario(name: string): void {
    this.#scenario = name;
  }

  /** Stops the Castellans and MCP servers of the scenario that ended (baselines stay). */
  async endScenario(): Promise<void> {
    const servers = [...this.#mcp.values(), ...this.#castellans.values()];
    this.#mcp.clear();
    this.#castellans.clear();
    for (const server of servers) await server.then((s) => s.stop(), () => {});
  }

  /** The scenario's Castellan on one storage, started on first use, on fresh stores. */
  castellan(storage: CastellanStorage, key = 'shared', root?: string): Promise<CastellanServer> {
    const id = `${storage}/${key}/${root ?? ''}/${this.#scenario}`;
    let started = this.#castellans.get(id);
    if (!started) {
      started = (async () => {
        const stores = storage === 'production' ? await this.stores() : undefined;
        const server = await startCastellanServer({
          name: `castellan ${storage}${key === 'shared' ? '' : ` (${key})`}`,
          storage,
          stores,
          nodeArgs: this.#profileArgs(`castellan-${storage}-${key}${root !== undefined ? '-compared' : ''}`),
          extraEnv: { CASTELLAN_CONFIG_FILE: await this.#config() },
          ...(root !== undefined ? { root } : {}),
        });
        return server;
      })();
      this.#castellans.set(id, started);
    }
    return started;
  }

  /** Starts a Castellan that this scenario alone uses and stops itself; not cached. */
  async ownCastellan(storage: CastellanStorage, name: string, workers?: number): Promise<CastellanServer> {
    const stores = storage === 'production' ? await this.stores() : undefined;
    return startCastellanServer({
      name,
      storage,
      stores,
      ...(workers !== undefined ? { workers } : {}),
      nodeArgs: this.#profileArgs(name.replace(/\W+/g, '-')),
      extraEnv: { CASTELLAN_CONFIG_FILE: await this.#config() },
    });
  }

  mcpServer(kind: 'notes' | 'reports', storage: CastellanStorage): Promise<BenchServer> {
    const id = `${kind}/${storage}`;
    let started = this.#mcp.get(id);
    if (!started) {
      started = this.castellan(storage).then((castellan) => startMcpExample(kind, castellan));
      this.#mcp.set(id, started);
    }
    return started;
  }
}

export const baselineAuth = basicAuth('bench-service', BASELINE_SECRET);

export function castellanAuth(server: CastellanServer): string {
  return basicAuth('demo-service', server.clientSecret);
}
