import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { findExecutable, spawnManaged, waitUntilReady, type ManagedProcess } from './child-processes.ts';
import { freePort, makeServerDir, quietLog, type Log, type RunningServer } from './running-server.ts';

const run = promisify(execFile);
const SBIN = ['/usr/sbin', '/usr/bin', '/usr/local/bin'];

/** The path of redis-server, installing Debian's package first when it is missing. */
export async function ensureRedisServer(log: Log = quietLog): Promise<string> {
  const found = findExecutable('redis-server', SBIN);
  if (found !== undefined) return found;
  if (process.getuid?.() !== 0) {
    throw new Error('redis-server is not installed; run: sudo apt-get install -y redis-server');
  }
  log('installing redis-server with apt-get (once)');
  const options = {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    maxBuffer: 64 * 1024 * 1024,
    timeout: 10 * 60_000,
  };
  // Another test run may hold the dpkg lock; wait for it rather than fail.
  const lockWait = ['-o', 'DPkg::Lock::Timeout=300'];
  await run('apt-get', [...lockWait, 'update'], options);
  await run('apt-get', [...lockWait, 'install', '-y', '--no-install-recommends', 'redis-server'], options);
  const installed = findExecutable('redis-server', SBIN);
  if (installed === undefined) throw new Error('apt-get installed redis-server but it is not on PATH');
  return installed;
}

async function ping(url: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {}); // the probe's own rejection reports it
  try {
    await client.connect();
    const reply = await client.ping();
    if (reply !== 'PONG') throw new Error(`PING answered ${reply}`);
  } finally {
    client.disconnect();
  }
}

export interface StartRedisOptions {
  log?: Log;
}

/**
 * Starts a throw-away redis-server on a free 127.0.0.1 port: no RDB snapshots, no AOF,
 * a temporary --dir (STORES.md "Redis").
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RunningServer> {
  const binary = await ensureRedisServer(options.log);
  const dir = await makeServerDir('redis');
  let child: ManagedProcess | undefined;
  try {
    // redis-server cannot report a port it picked itself (--port 0 disables TCP), so a
    // port taken between freePort() and bind is retried with another.
    for (let attempt = 1; ; attempt += 1) {
      const port = await freePort();
      const url = `redis://127.0.0.1:${port}`;
      child = spawnManaged(binary, [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--save', '',
        '--appendonly', 'no',
        '--dir', dir,
        '--daemonize', 'no',
        '--loglevel', 'warning',
      ]);
      try {
        await waitUntilReady('redis-server', () => ping(url), child, 10_000);
      } catch (error) {
        await child.stop();
        if (attempt < 3 && child.output().includes('Address already in use')) continue;
        throw error;
      }
      const started = child;
      return {
        url,
        async stop() {
          await started.stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
  } catch (error) {
    await child?.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
