import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A server the tests started; stop() ends the process and removes its data directory. */
export interface RunningServer {
  readonly url: string;
  stop(): Promise<void>;
}

export type Log = (line: string) => void;

export const quietLog: Log = () => {};

/**
 * A port the OS reports free on 127.0.0.1. Another process may take it before the server
 * binds, so callers retry with a new port when the server fails to start.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('the OS gave no port'));
      });
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A fresh data directory `<tmp>/castellan-<kind>-<pid>-XXXXXX`. Directories of earlier
 * runs whose process is gone (killed before its teardown) are removed first.
 */
export async function makeServerDir(kind: string): Promise<string> {
  const prefix = `castellan-${kind}-`;
  const stale = (await readdir(tmpdir())).filter((name) => {
    if (!name.startsWith(prefix)) return false;
    const pid = Number.parseInt(name.slice(prefix.length), 10);
    return Number.isSafeInteger(pid) && pid > 0 && !isAlive(pid);
  });
  await Promise.all(stale.map((name) => rm(join(tmpdir(), name), { recursive: true, force: true })));
  return mkdtemp(join(tmpdir(), `${prefix}${process.pid}-`));
}
