import { join } from 'node:path';
import { spawnManaged, waitUntilReady, type ManagedProcess } from './child-processes.ts';

const REPO = join(import.meta.dirname, '..', '..');

export interface CastellanProcess {
  process: ManagedProcess;
  baseUrl: string;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, no shutdown code runs. */
  kill(): Promise<void>;
}

/** Starts `node src/main.ts` (the `npm start` entry) as its own OS process and waits until it answers. */
export async function startCastellanProcess(env: Record<string, string>): Promise<CastellanProcess> {
  const child = spawnManaged(process.execPath, [join(REPO, 'src/main.ts')], {
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  const baseUrl = env.CASTELLAN_BASE_URL ?? `http://localhost:${env.PORT}`;
  await waitUntilReady('castellan', async () => {
    const response = await fetch(`${baseUrl}/healthz`);
    if (!response.ok) throw new Error(`healthz ${response.status}`);
  }, child, 20_000);
  return {
    process: child,
    baseUrl,
    stop: () => child.stop(5_000),
    async kill() {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
      await child.exited;
    },
  };
}
