import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryAuditSink } from '../observability/audit.ts';
import { createKeyring } from './keyring.ts';
import { createLocalKeyWrapper, generateKeyEncryptionKey } from './kms.ts';
import { createRotationSchedule, startRotationSchedule } from './rotation-schedule.ts';
import { createMemorySigningKeyStore } from './signing-key-store.memory.ts';

const DAY = 86_400_000;
const log = pino({ level: 'silent' });

function setup(tenants: Array<{ id: string; settings: Record<string, unknown> }>) {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const clock = () => new Date(now);
  const keyring = createKeyring({ store: createMemorySigningKeyStore(), wrapper: createLocalKeyWrapper(generateKeyEncryptionKey()), now: clock });
  const invalidated: string[] = [];
  const listTenants = vi.fn(async () => tenants);
  const audit = createMemoryAuditSink();
  const schedule = createRotationSchedule({ keyring, listTenants, tenants: { invalidate: (t) => invalidated.push(t) }, audit, log, now: clock });
  return { keyring, schedule, invalidated, listTenants, audit, advanceDays: (days: number) => { now += days * DAY; } };
}

describe('key rotation schedule', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('leaves tenants alone that turned scheduled rotation off, have invalid settings or no keys yet', async () => {
    const { keyring, schedule, invalidated, advanceDays } = setup([
      { id: 'manual', settings: { keys: { scheduledRotation: false } } },
      { id: 'broken', settings: { ttl: { accessToken: 'long' } } },
      { id: 'unused', settings: {} },
    ]);
    await keyring.ensureActiveKeys('manual');
    await keyring.ensureActiveKeys('broken');
    advanceDays(365);
    const reports = await schedule.runOnce();
    expect(reports.map((r) => r.tenant)).toEqual(['manual', 'unused']);
    for (const r of reports) expect([...r.prepared, ...r.rotated]).toEqual([]);
    expect(invalidated).toEqual([]);
    expect(await keyring.describeKeys('unused', { retentionSeconds: 60 })).toEqual([]);
  });

  it('prepares, then rotates, then tells this node to rebuild; a pass in flight is shared', async () => {
    const { keyring, schedule, invalidated, audit, advanceDays } = setup([{ id: 'acme', settings: { keys: { rotationDays: 30 } } }]);
    const { ES256: first } = await keyring.ensureActiveKeys('acme');
    advanceDays(29);
    const [a, b] = await Promise.all([schedule.runOnce(), schedule.runOnce()]);
    expect(a).toBe(b);
    expect(a![0]!.prepared).toHaveLength(2);
    expect(invalidated).toEqual(['acme']);
    advanceDays(1);
    const rotated = (await schedule.runOnce())[0]!.rotated;
    expect(rotated.find((r) => r.alg === 'ES256')).toMatchObject({ previousKid: first, generation: 2 });
    expect(audit.events.map((e) => e.type)).toEqual(['key_rotated', 'key_rotated']);
  });

  it('runs on its timer until stopped (fake timers)', async () => {
    vi.useFakeTimers();
    const { listTenants } = setup([]);
    const started = startRotationSchedule({
      keyring: createKeyring({ store: createMemorySigningKeyStore(), wrapper: createLocalKeyWrapper(generateKeyEncryptionKey()) }),
      listTenants, tenants: { invalidate: () => undefined }, audit: createMemoryAuditSink(), log, firstPassMs: 1_000, intervalMs: 10_000,
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(listTenants).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(listTenants).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(listTenants).toHaveBeenCalledTimes(3);
    await started.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(listTenants).toHaveBeenCalledTimes(3);
  });
});
