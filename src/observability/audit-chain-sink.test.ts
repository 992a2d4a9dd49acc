import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAuditChainSink, type AuditChain } from './audit-chain.ts';
import type { AuditEvent } from './audit.ts';

const EVENT: AuditEvent = { type: 'token_issued', tenant: 'demo', outcome: 'success' };

function hangingChain(): { chain: AuditChain; settle: (ok: boolean) => void } {
  let settle: (ok: boolean) => void = () => {};
  const chain = {
    append: () => new Promise((resolve, reject) => {
      settle = (ok) => (ok ? resolve({}) : reject(new Error('store gone')));
    }),
    drain: async () => {},
  } as unknown as AuditChain;
  return { chain, settle: (ok) => settle(ok) };
}

function capturingLog(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

describe('audit chain sink: how long a request waits for its link', () => {
  afterEach(() => vi.useRealTimers());

  it('lets the request go on after maxWaitMs while the append hangs, and logs the failure when it comes', async () => {
    vi.useFakeTimers();
    const { chain, settle } = hangingChain();
    const { log, lines } = capturingLog();
    let resolved = false;
    const recorded = createAuditChainSink(chain, log, { maxWaitMs: 1_000 }).record(EVENT).then(() => { resolved = true; });
    await vi.advanceTimersByTimeAsync(999);
    expect(resolved).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await recorded;
    expect(resolved).toBe(true);
    expect(lines.map((l) => l.msg)).toEqual(['audit chain append still pending: the request goes on, the append continues']);
    settle(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(lines.map((l) => l.msg)).toContain('audit chain append failed: the event is in the log only');
  });

  it('waits for the link without a bound, and says nothing when it is written', async () => {
    vi.useFakeTimers();
    const { chain, settle } = hangingChain();
    const { log, lines } = capturingLog();
    let resolved = false;
    const recorded = createAuditChainSink(chain, log).record(EVENT).then(() => { resolved = true; });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(resolved).toBe(false);
    settle(true);
    await recorded;
    expect(lines).toEqual([]);
  });
});
