import type { TestProject } from 'vitest/node';
import { startFerretDb } from '../support/ferretdb.ts';
import { startRedis } from '../support/redis.ts';
import type { RunningServer } from '../support/running-server.ts';
import type {} from '../support/servers.ts';

/**
 * Starts FerretDB and redis-server once per run (installing or building them first when
 * missing) and hands their URLs to tests with provide(); test/support/servers.ts reads
 * them. If either fails, whatever did start is stopped before the error surfaces: vitest
 * runs no teardown for a setup that threw.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (line: string): void => {
    process.stderr.write(`[test servers] ${line}\n`);
  };
  const started = Date.now();
  const results = await Promise.allSettled([startFerretDb({ log }), startRedis({ log })]);
  const servers = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled(servers.map((server: RunningServer) => server.stop()));
  };

  const [ferretdb, redis] = results;
  if (ferretdb?.status !== 'fulfilled' || redis?.status !== 'fulfilled') {
    await stopAll();
    const reasons = results.flatMap((result) => (result.status === 'rejected' ? [result.reason] : []));
    throw new AggregateError(reasons, `test servers failed to start: ${reasons.map(String).join('; ')}`);
  }

  project.provide('mongoUrl', ferretdb.value.url);
  project.provide('redisUrl', redis.value.url);
  log(`FerretDB ${ferretdb.value.url}, Redis ${redis.value.url} (${Date.now() - started} ms)`);
  return stopAll;
}
