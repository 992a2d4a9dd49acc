import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdminActor } from '../../src/admin/services/admin-actor.ts';
import { createKeyAdmin, type KeyAdmin } from '../../src/admin/services/keys.ts';
import { NotFoundError, InvalidRequestError, TenantNotFoundError } from '../../src/errors/errors.ts';
import { createKeyring, type Keyring } from '../../src/keys/keyring.ts';
import { createLocalKeyWrapper } from '../../src/keys/kms.ts';
import { createRotationSchedule, type RotationSchedule } from '../../src/keys/rotation-schedule.ts';
import type { SigningAlg } from '../../src/keys/signing-key-store.ts';
import { createMemoryAuditSink, type AuditEvent } from '../../src/observability/audit.ts';
import { signedTokenRetentionSeconds, tenantSettingsSchema } from '../../src/tenants/tenant-settings.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { basicAuth, postToken } from '../support/oauth.ts';
import { testClock, type TestClock } from '../keys/test-clock.ts';

const MCP_RESOURCE = 'http://localhost:3001/mcp';
const DAY = 86_400;
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'];
const operator: AdminActor = { via: 'cli', subject: 'alice' };

describe('signing-key rotation by command and by schedule on FerretDB + Redis', () => {
  let castellan: TestCastellan;
  let admin: KeyAdmin;
  const audit = createMemoryAuditSink();

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'key_rotation');
    const { keyring, tenants, storage } = castellan.running;
    admin = createKeyAdmin({ keyring, tenants, storage, audit });
  });
  afterAll(async () => castellan?.stop());

  /** A JWT access token (ES256) from the running server. */
  async function issueJwt(): Promise<string> {
    const { status, body } = await postToken(
      castellan.issuer,
      { grant_type: 'client_credentials', resource: MCP_RESOURCE, scope: 'notes:read' },
      basicAuth('demo-service', castellan.clientSecret),
    );
    expect(status, JSON.stringify(body)).toBe(200);
    return String(body.access_token);
  }

  const kidOf = (token: string): string | undefined => decodeProtectedHeader(token).kid;

  async function jwks(): Promise<JSONWebKeySet> {
    const response = await fetch(`${castellan.issuer}/jwks`);
    expect(response.status).toBe(200);
    return (await response.json()) as JSONWebKeySet;
  }

  async function publishedKids(): Promise<string[]> {
    return (await jwks()).keys.map((k) => String(k.kid));
  }

  /** Whether the server's JWKS (as a resource server would fetch it now) verifies the token. */
  async function verifies(token: string): Promise<boolean> {
    const set = createLocalJWKSet(await jwks());
    return jwtVerify(token, set, { issuer: castellan.issuer, audience: MCP_RESOURCE }).then(() => true, () => false);
  }

  const eventsOf = (type: string): AuditEvent[] => audit.events.filter((e) => e.type === type);

  function expectNoKeyMaterial(events: readonly AuditEvent[]): void {
    for (const event of events) {
      for (const member of PRIVATE_MEMBERS) expect(JSON.stringify(event)).not.toContain(`"${member}":`);
      expect(JSON.stringify(event)).not.toMatch(/ciphertext|encrypted|wrapped/i);
    }
  }

  it('rotates by command: new kids sign, the old ones are retired but still verify their tokens; audited with the actor', async () => {
    const before = await admin.list('demo');
    const activeBefore = Object.fromEntries(before.filter((k) => k.state === 'active').map((k) => [k.alg, k.kid]));
    expect(Object.keys(activeBefore).sort()).toEqual(['ES256', 'RS256']);
    for (const key of before) expect(Object.keys(key).sort()).not.toContain('d');
    const oldToken = await issueJwt();
    expect(kidOf(oldToken)).toBe(activeBefore.ES256);

    // A next key already published (as the schedule makes them) is the one that takes over.
    const published = await castellan.running.keyring.prepareNext('demo', 'RS256');
    const rotated = await admin.rotate('demo', { actor: operator });
    expect(rotated.map((r) => r.alg).sort()).toEqual(['ES256', 'RS256']);
    expect(rotated.find((r) => r.alg === 'RS256')?.kid).toBe(published);
    for (const r of rotated) {
      expect(r.previousKid).toBe(activeBefore[r.alg]);
      expect(r.kid).not.toBe(r.previousKid);
    }
    const newEs256 = rotated.find((r) => r.alg === 'ES256')!.kid;

    // This node rebuilt its provider at once: the next token is signed by the new key.
    const newToken = await issueJwt();
    expect(kidOf(newToken)).toBe(newEs256);
    expect(await verifies(newToken)).toBe(true);
    expect(await verifies(oldToken)).toBe(true);

    const after = await admin.list('demo');
    const old = after.find((k) => k.kid === activeBefore.ES256)!;
    expect(old.state).toBe('retired');
    expect(Date.parse(old.removeAt!)).toBeGreaterThan(Date.now());
    expect(after.find((k) => k.kid === newEs256)?.state).toBe('active');

    const events = eventsOf('key_rotated');
    expect(events).toHaveLength(2);
    for (const event of events) {
      expect(event).toMatchObject({ tenant: 'demo', outcome: 'success', reason: 'command', actor: { via: 'cli', subject: 'alice' } });
      expect(event.kid).toBe(rotated.find((r) => r.alg === event.alg)?.kid);
      expect(event.previousKid).toBe(activeBefore[event.alg as SigningAlg]);
    }
    expectNoKeyMaterial(events);

    // One alg only; refused for an alg the tenant does not sign with, and for unknown tenants.
    const only = await admin.rotate('demo', { alg: 'RS256', actor: operator });
    expect(only.map((r) => r.alg)).toEqual(['RS256']);
    await expect(admin.rotate('demo', { alg: 'EdDSA', actor: operator })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(admin.rotate('nobody', { actor: operator })).rejects.toBeInstanceOf(TenantNotFoundError);
    await expect(admin.list('nobody')).rejects.toBeInstanceOf(TenantNotFoundError);
    await expect(admin.list('Not A Tenant')).rejects.toBeInstanceOf(TenantNotFoundError);
  });

  it('lists and rotates the keys of a disabled tenant (it answers nowhere, operators still manage it)', async () => {
    await castellan.running.storage.tenants.create({ id: 'dormant', displayName: 'Dormant' });
    await castellan.running.tenants.get('dormant');
    await castellan.running.storage.tenants.update('dormant', { disabled: true });
    castellan.running.tenants.invalidate('dormant');
    await expect(castellan.running.tenants.get('dormant')).rejects.toBeInstanceOf(TenantNotFoundError);
    const before = (await admin.list('dormant')).filter((k) => k.state === 'active');
    expect(before).toHaveLength(2);
    const rotated = await admin.rotate('dormant', { alg: 'ES256', actor: operator });
    expect(rotated[0]?.previousKid).toBe(before.find((k) => k.alg === 'ES256')?.kid);
  });

  it('retires a compromised active key at once: replaced, gone from the JWKS, its tokens no longer verify', async () => {
    const token = await issueJwt();
    const compromised = kidOf(token)!;
    expect(await publishedKids()).toContain(compromised);
    audit.events.length = 0;

    const retired = await admin.retire('demo', compromised, { actor: { via: 'api', subject: 'ops-bot', clientId: 'admin-console' } });
    expect(retired).toMatchObject({ kid: compromised, alg: 'ES256', previousState: 'active' });
    const replacement = retired.replacement!.kid;
    expect(replacement).not.toBe(compromised);

    expect(await publishedKids()).not.toContain(compromised);
    expect(await verifies(token)).toBe(false);
    const fresh = await issueJwt();
    expect(kidOf(fresh)).toBe(replacement);
    expect(await verifies(fresh)).toBe(true);
    expect((await admin.list('demo')).map((k) => k.kid)).not.toContain(compromised);

    expect(eventsOf('key_retired')).toEqual([expect.objectContaining({
      tenant: 'demo', kid: compromised, alg: 'ES256', previousState: 'active', replacementKid: replacement,
      actor: { via: 'api', subject: 'ops-bot', clientId: 'admin-console' },
    })]);
    expect(eventsOf('key_rotated')).toEqual([expect.objectContaining({ kid: replacement, previousKid: compromised, reason: 'retire' })]);
    expectNoKeyMaterial(audit.events);

    // A retired (not active) key is withdrawn without a rotation.
    const retiredKey = (await admin.list('demo')).find((k) => k.state === 'retired')!;
    const withdrawn = await admin.retire('demo', retiredKey.kid, { actor: operator });
    expect(withdrawn.replacement).toBeUndefined();
    expect(withdrawn.previousState).toBe('retired');
    expect(await publishedKids()).not.toContain(retiredKey.kid);

    await expect(admin.retire('demo', 'no-such-kid', { actor: operator })).rejects.toBeInstanceOf(NotFoundError);
    await expect(admin.retire('demo', compromised, { actor: operator })).rejects.toBeInstanceOf(NotFoundError);
  });

  describe('by schedule, two nodes running the scheduler', () => {
    let clock: TestClock;
    let keyring: Keyring;
    let nodes: RotationSchedule[];
    const scheduleAudit = createMemoryAuditSink();
    let retentionSeconds: number;

    beforeAll(async () => {
      clock = testClock(new Date());
      const wrapper = createLocalKeyWrapper(castellan.env.CASTELLAN_KEY_ENCRYPTION_KEY!);
      const node = (): RotationSchedule => createRotationSchedule({
        keyring: createKeyring({ store: castellan.running.storage.signingKeys, wrapper, now: clock.now }),
        listTenants: () => castellan.running.storage.tenants.list(),
        tenants: castellan.running.tenants,
        audit: scheduleAudit,
        log: pino({ level: 'silent' }),
        now: clock.now,
      });
      keyring = createKeyring({ store: castellan.running.storage.signingKeys, wrapper, now: clock.now });
      nodes = [node(), node()];
      const record = await castellan.running.storage.tenants.get('demo');
      retentionSeconds = signedTokenRetentionSeconds(tenantSettingsSchema.parse(record!.settings));
    });

    const activeKid = async (alg: SigningAlg) => (await admin.list('demo')).find((k) => k.alg === alg && k.state === 'active')!;

    it('publishes the next key ahead, then exactly one node rotates; the old key verifies until its retention ends', async () => {
      const before = await activeKid('ES256');
      // Young keys: nothing to do (both nodes at once).
      const idle = (await Promise.all(nodes.map((n) => n.runOnce()))).flat().find((r) => r.tenant === 'demo')!;
      expect(idle.prepared).toEqual([]);
      expect(idle.rotated).toEqual([]);

      // rotationDays 90, prepareAheadSeconds one day: on day 89 the next key is published, not signing.
      clock.advance(89 * DAY);
      const [prepared] = (await nodes[0]!.runOnce()).filter((r) => r.tenant === 'demo');
      expect(prepared!.prepared.map((p) => p.alg).sort()).toEqual(['ES256', 'RS256']);
      expect(prepared!.rotated).toEqual([]);
      const next = prepared!.prepared.find((p) => p.alg === 'ES256')!.kid;
      expect(await publishedKids()).toContain(next);
      expect((await admin.list('demo')).find((k) => k.kid === next)?.state).toBe('next');
      const oldToken = await issueJwt();
      expect(kidOf(oldToken)).toBe(before.kid);

      // Day 90: both nodes run at once; the insert-only election lets exactly one rotate each alg.
      clock.advance(DAY);
      const reports = (await Promise.all(nodes.map((n) => n.runOnce()))).flat().filter((r) => r.tenant === 'demo');
      const rotations = reports.flatMap((r) => r.rotated);
      expect(rotations.map((r) => r.alg).sort()).toEqual(['ES256', 'RS256']);
      expect(reports.flatMap((r) => r.prepared)).toEqual([]);
      const after = await activeKid('ES256');
      expect(after.kid).toBe(next);
      const summaries = await keyring.describeKeys('demo', { retentionSeconds });
      const beforeGeneration = summaries.find((s) => s.kid === before.kid)!.generation!;
      expect(summaries.find((s) => s.kid === next)!.generation).toBe(beforeGeneration + 1);
      // A node that saw the old state loses instead of rotating a second time.
      expect(await keyring.activateNext('demo', 'ES256', { generation: beforeGeneration + 1 })).toMatchObject({ won: false, kid: next });
      // Running again changes nothing.
      expect((await nodes[1]!.runOnce()).flatMap((r) => r.rotated)).toEqual([]);

      // Other tenants (the system tenant) rotate on the same passes: demo's events only.
      const scheduled = scheduleAudit.events.filter((e) => e.type === 'key_rotated' && e.tenant === 'demo');
      expect(scheduled).toHaveLength(2);
      for (const event of scheduled) expect(event).toMatchObject({ tenant: 'demo', reason: 'schedule', actor: { via: 'schedule', subject: 'key-rotation' } });
      expect(scheduled.find((e) => e.alg === 'ES256')).toMatchObject({ kid: next, previousKid: before.kid });
      expectNoKeyMaterial(scheduled);

      const newToken = await issueJwt();
      expect(kidOf(newToken)).toBe(next);
      expect(await verifies(oldToken)).toBe(true);

      // Just before the retention ends the retired key stays published.
      clock.advance(retentionSeconds - 10);
      const early = (await nodes[0]!.runOnce()).flatMap((r) => r.removed);
      expect(early).not.toContain(before.kid);
      expect(await publishedKids()).toContain(before.kid);
      expect(await verifies(oldToken)).toBe(true);

      // Then it is removed: gone from the JWKS, its tokens (expired by now anyway) no longer verify.
      clock.advance(20);
      const late = (await Promise.all(nodes.map((n) => n.runOnce()))).flat().flatMap((r) => r.removed);
      expect(late).toContain(before.kid);
      expect(await publishedKids()).not.toContain(before.kid);
      expect(await verifies(oldToken)).toBe(false);
      expect(await verifies(newToken)).toBe(true);
    });

    it('never activates a next key before it has been published for the lead time', async () => {
      const current = await activeKid('ES256');
      // The scheduler was down for a long time: the key is long overdue, but no next key exists.
      clock.advance(200 * DAY);
      const first = (await nodes[0]!.runOnce()).find((r) => r.tenant === 'demo')!;
      expect(first.rotated).toEqual([]);
      const next = first.prepared.find((p) => p.alg === 'ES256')!.kid;
      clock.advance(DAY - 1);
      expect((await nodes[1]!.runOnce()).flatMap((r) => r.rotated)).toEqual([]);
      expect((await activeKid('ES256')).kid).toBe(current.kid);
      clock.advance(1);
      const rotated = (await nodes[1]!.runOnce()).flatMap((r) => r.rotated);
      expect(rotated.find((r) => r.alg === 'ES256')).toMatchObject({ kid: next, previousKid: current.kid });
      expect(kidOf(await issueJwt())).toBe(next);
    });
  });
});
