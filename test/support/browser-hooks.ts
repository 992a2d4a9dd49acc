import type { BrowserContext } from 'playwright-core';
import { afterAll, afterEach, expect } from 'vitest';
import { closeWatchedPages } from './browser.ts';

/*
 * The hooks of a browser test file, apart from browser.ts, which the global setup imports
 * too (outside any test file, where vitest's hooks have no place).
 */

/** What a browser test file starts and closes once: the browser, a TestCastellan, a TestClientSite. */
export type Closable = { close(): Promise<unknown> } | { stop(): Promise<unknown> };

/**
 * Registers the closing hooks of a browser test file that opens its pages with newWatchedPage:
 * after each test, closeWatchedPages, and no console error may have been collected; after
 * all, each of `started()` (read then, as beforeAll assigned them; one never started is
 * undefined) is closed in turn (`stop()` where it has one, else `close()`).
 */
export function closeAfterBrowserTests(contexts: BrowserContext[], consoleErrors: string[], started: () => ReadonlyArray<Closable | undefined>): void {
  afterEach(async () => {
    expect(await closeWatchedPages(contexts, consoleErrors)).toEqual([]);
  });
  afterAll(async () => {
    for (const thing of started()) {
      if (thing === undefined) continue;
      await ('stop' in thing ? thing.stop() : thing.close());
    }
  });
}
