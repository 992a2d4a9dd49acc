import type { TestProject } from 'vitest/node';
import { ensureChromium } from '../support/browser.ts';
import { startFerretDb } from '../support/ferretdb.ts';
import { startRedis } from '../support/redis.ts';
import type { RunningServer } from '../support/running-server.ts';
import type {} from '../support/servers.ts';

/**
 * Starts FerretDB and redis-server once per run (installing or building them first when
 * missing) and hands their URLs to tests with provide(); test/support/servers.ts reads
 * them. If either fails, whatever did start is stopped before the error surfaces: vitest
 * runs no teardown for a setup that threw. Meanwhile Debian's chromium is installed when
 * missing, for the browser tests; if that fails only they fail (launchBrowser says why).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (line: string): void => {
    process.stderr.write(`[test servers] ${line}\n`);
  };
  const started = Date.now();
  const chromium = ensureChromium(log).then(
    () => undefined,
    (error: unknown) => log(`chromium not installed, browser tests will fail: ${String(error)}`),
  );
  const results = await Promise.allSettled([startFerretDb({ log }), startRedis({ log })]);
  const serversMs = Date.now() - started;
  // Never leave an apt-get running behind a failed setup (a killed dpkg needs repair).
  await chromium;
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
  log(`FerretDB ${ferretdb.value.url}, Redis ${redis.value.url} (${serversMs} ms)`);
  return stopAll;
}
