import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { collectConsoleErrors } from './accessibility.ts';
import { freePort, quietLog, type Log } from './running-server.ts';

/*
 * Headless Chromium for browser tests: Debian's chromium package driven by playwright-core.
 * Playwright's own browser downloads are never used (they need the network); the package is
 * installed with apt-get when missing, as test/support/redis.ts does for redis-server.
 */

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Where tests save screenshots (test-output/ is gitignored). */
export const SCREENSHOT_DIR = resolve(import.meta.dirname, '../../test-output/screenshots');

/**
 * Flags for a closed network: no sandbox (root in a container), no GPU, and none of the
 * background traffic (updates, sync, safe browsing, QUIC probes) Chromium would otherwise
 * keep retrying against hosts it cannot reach.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

const run = promisify(execFile);

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let installing: Promise<string> | undefined;

/** The path of Debian's chromium, installing the package first when it is missing (once per process). */
export function ensureChromium(log: Log = quietLog): Promise<string> {
  if (isExecutable(CHROMIUM_PATH)) return Promise.resolve(CHROMIUM_PATH);
  installing ??= installChromium(log).finally(() => {
    installing = undefined;
  });
  return installing;
}

async function installChromium(log: Log): Promise<string> {
  if (process.getuid?.() !== 0) {
    throw new Error(`${CHROMIUM_PATH} is missing; run: sudo apt-get install -y chromium`);
  }
  log('installing chromium with apt-get (once)');
  const options = {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    maxBuffer: 64 * 1024 * 1024,
    timeout: 10 * 60_000,
  };
  // Another apt-get (the redis-server install, another run) may hold the dpkg lock: wait for it.
  const lockWait = ['-o', 'DPkg::Lock::Timeout=300'];
  const install = () => run('apt-get', [...lockWait, 'install', '-y', '--no-install-recommends', 'chromium'], options);
  try {
    await install();
  } catch {
    // Package lists missing or stale: refresh them and try once more.
    await run('apt-get', [...lockWait, 'update'], options);
    await install();
  }
  if (!isExecutable(CHROMIUM_PATH)) throw new Error(`apt-get installed chromium but ${CHROMIUM_PATH} is missing`);
  return CHROMIUM_PATH;
}

/**
 * Launches headless Chromium. Each launch gets a fresh profile: playwright-core passes
 * Chromium a `--user-data-dir` of its own, a new temporary directory it deletes on close
 * (it refuses the flag in `args`; only launchPersistentContext takes a directory, and that
 * gives no Browser).
 */
export async function launchBrowser(log: Log = quietLog): Promise<Browser> {
  const executablePath = await ensureChromium(log);
  return chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS], timeout: 30_000 });
}

/** Saves a full-page screenshot as test-output/screenshots/<name>.png; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name.replace(/[^A-Za-z0-9_.-]+/g, '-')}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

export interface WatchedPageOptions {
  /** For the new context (a viewport, say). */
  context?: BrowserContextOptions;
  /** Console errors whose text matches are expected on these pages, and not collected. */
  ignoreConsole?: RegExp;
}

/**
 * A fresh browser session (a context of its own, so its own cookies) with one page, whose
 * console errors go to `consoleErrors` (collectConsoleErrors); the context joins `contexts`
 * for the test to close. A page that is not what a step expects fails the step in seconds,
 * not at the test timeout.
 */
export async function newWatchedPage(
  browser: Browser,
  contexts: BrowserContext[],
  consoleErrors: string[],
  options: WatchedPageOptions = {},
): Promise<Page> {
  const context = await browser.newContext(options.context);
  contexts.push(context);
  context.setDefaultTimeout(5_000);
  const page = await context.newPage();
  collectConsoleErrors(page, consoleErrors, options.ignoreConsole);
  return page;
}

/**
 * After each test of newWatchedPage's pages: closes the sessions in `contexts` and returns
 * the console errors collected meanwhile, emptying `consoleErrors` for the next test (which
 * expects them to be none: `expect(await closeWatchedPages(contexts, consoleErrors)).toEqual([])`).
 */
export async function closeWatchedPages(contexts: BrowserContext[], consoleErrors: string[]): Promise<string[]> {
  await Promise.all(contexts.splice(0).map((context) => context.close()));
  return consoleErrors.splice(0);
}

/** The client's web site in a browser test (see startTestClientSite). */
export interface TestClientSite {
  /** http://127.0.0.1:<port> */
  origin: string;
  close(): Promise<void>;
}

/**
 * The client's side of a browser test, on a free loopback port: every path answers a small
 * page whose title and heading are "Test client" (favicon requests get an empty 204), so a
 * browser sent back to the client visibly lands there and the test reads what it brought.
 */
export async function startTestClientSite(): Promise<TestClientSite> {
  const port = await freePort();
  const server = createServer((req, res) => {
    if (req.url === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test client</title></head><body><main><h1>Test client</h1><p>Back at the application.</p></main></body></html>');
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
