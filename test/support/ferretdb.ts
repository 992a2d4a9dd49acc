import { execFile } from 'node:child_process';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MongoClient } from 'mongodb';
import { findExecutable, spawnManaged, waitUntilReady, type ManagedProcess } from './child-processes.ts';
import { makeServerDir, quietLog, type Log, type RunningServer } from './running-server.ts';

const run = promisify(execFile);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCE_DIR = join(REPO, 'tools/ferretdb');
export const FERRETDB_BINARY = join(REPO, '.cache/ferretdb/ferretdb');

async function newestSourceMtime(): Promise<number> {
  const names = (await readdir(SOURCE_DIR)).filter((name) => /^(go\.mod|go\.sum|.*\.go)$/u.test(name));
  const times = await Promise.all(names.map(async (name) => (await stat(join(SOURCE_DIR, name))).mtimeMs));
  return Math.max(0, ...times);
}

async function mtimeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Builds tools/ferretdb (FerretDB v1.24.2 embedded, SQLite backend; STORES.md) into
 * .cache/ferretdb/ferretdb unless the binary is newer than every source file. The first
 * build takes about a minute on 2 cores; Go's caches make later ones fast.
 */
export async function ensureFerretDbBinary(log: Log = quietLog): Promise<string> {
  const built = await mtimeOf(FERRETDB_BINARY);
  if (built !== undefined && built >= (await newestSourceMtime())) return FERRETDB_BINARY;
  const go = findExecutable('go', ['/usr/local/go/bin']);
  if (go === undefined) throw new Error('Go is needed to build FerretDB for the tests: install Go 1.26 (/usr/local/go/bin/go)');
  log(built === undefined ? 'building FerretDB (first time: about a minute)' : 'rebuilding FerretDB (tools/ferretdb changed)');
  await mkdir(dirname(FERRETDB_BINARY), { recursive: true });
  // Build beside the target and rename: a concurrent test run never sees half a binary.
  const partial = `${FERRETDB_BINARY}.${process.pid}.partial`;
  try {
    await run(go, ['build', '-trimpath', '-o', partial, '.'], {
      cwd: SOURCE_DIR,
      maxBuffer: 64 * 1024 * 1024,
      timeout: 15 * 60_000,
    });
    await rename(partial, FERRETDB_BINARY);
  } catch (error) {
    await rm(partial, { force: true });
    const stderr = typeof error === 'object' && error !== null && 'stderr' in error ? String(error.stderr) : '';
    throw new Error(`go build of tools/ferretdb failed: ${String(error)}\n${stderr}`);
  }
  return FERRETDB_BINARY;
}

async function ping(url: string): Promise<void> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 1000, connectTimeoutMS: 1000 });
  try {
    await client.db('admin').command({ ping: 1 });
  } finally {
    await client.close();
  }
}

export interface StartFerretDbOptions {
  log?: Log;
}

/**
 * Starts FerretDB on a port the OS picks (it binds 127.0.0.1:0 and prints its URI), with
 * a temporary SQLite directory. Its stdin stays a pipe from this process: FerretDB exits
 * when that closes, so it cannot outlive the tests.
 */
export async function startFerretDb(options: StartFerretDbOptions = {}): Promise<RunningServer> {
  const binary = await ensureFerretDbBinary(options.log);
  const dir = await makeServerDir('ferretdb');
  let child: ManagedProcess | undefined;
  try {
    child = spawnManaged(binary, ['-listen', '127.0.0.1:0', '-data-dir', dir, '-exit-on-stdin-close'], {
      stdinPipe: true,
    });
    const url = await child.firstLine(15_000);
    if (!url.startsWith('mongodb://')) throw new Error(`FerretDB printed ${JSON.stringify(url)}, not its URI`);
    await waitUntilReady('FerretDB', () => ping(url), child, 15_000);
    const started = child;
    return {
      url,
      async stop() {
        await started.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await child?.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
