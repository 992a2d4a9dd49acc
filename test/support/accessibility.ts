import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

let axeSource: Promise<string> | undefined;

/**
 * axe-core's serious and critical findings on the page. Evaluated over CDP, which the
 * pages' CSP (no script at all) does not govern, so the page itself stays as served.
 */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  axeSource ??= readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(await axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: unknown[] }> }> } }).axe;
    const result = await axe.run();
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
  });
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes} nodes)`);
}

/**
 * Collects the page's console errors (a CSP violation shows as one), favicon misses aside
 * (none is served; Chromium asks on every page), and those whose text matches `ignore`.
 */
export function collectConsoleErrors(page: Page, into: string[], ignore?: RegExp): void {
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (message.location().url.endsWith('/favicon.ico')) return;
    if (ignore?.test(message.text())) return;
    into.push(`${message.text()} (${message.location().url})`);
  });
}
