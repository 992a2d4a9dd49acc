import { Secret, TOTP, URI } from 'otpauth';
import { describe, expect, it } from 'vitest';
import { createLocalKeyWrapper, generateKeyEncryptionKey } from '../keys/kms.ts';
import { createMemoryOneTimeMarks } from '../storage/one-time-marks.ts';
import { createAccountService } from './accounts.ts';
import { createTotpService } from './totp-service.ts';
import { createMemoryUserStore } from './user-store.memory.ts';
import { matchTotp, timeStep, totpCodeAt } from './totp.ts';

const START = 1_700_000_010_000; // 10 s into a 30 s step

async function setup() {
  let now = START;
  const accounts = createAccountService({ users: createMemoryUserStore() });
  const marks = createMemoryOneTimeMarks(() => now);
  const kek = generateKeyEncryptionKey();
  const totp = createTotpService({ accounts, wrapper: createLocalKeyWrapper(kek), stepMarks: marks, recoveryMarks: marks, now: () => now });
  const user = await accounts.create({ tenant: 'acme', login: 'alice' });
  const pending = await totp.begin('acme', user.id);
  const { secret: grouped, uri } = await totp.reveal('acme', user.id, pending, 'Acme', 'alice');
  const secret = Uint8Array.from(Secret.fromBase32(grouped.replaceAll(' ', '')).bytes);
  return {
    accounts, totp, user, pending, uri, secret, kek,
    codeAt: (offsetSteps = 0) => totpCodeAt(secret, timeStep(now) + offsetSteps),
    tick: (ms: number) => { now += ms; },
  };
}

describe('TOTP factors (memory stores)', () => {
  it('turns on with a right first code only, and keeps the secret sealed', async () => {
    const { accounts, totp, user, pending, uri, codeAt, secret } = await setup();
    expect(uri).toContain('issuer=Acme');
    expect(await totp.confirm('acme', user.id, pending, codeAt(3))).toBeUndefined();
    expect((await accounts.findById('acme', user.id))?.totp).toBeUndefined();
    const codes = await totp.confirm('acme', user.id, pending, codeAt());
    expect(codes).toHaveLength(10);
    expect((await accounts.findById('acme', user.id))?.totp).toMatchObject({ recoveryCodesLeft: 10 });
    const stored = JSON.stringify(await accounts.totpEnrolment('acme', user.id));
    expect(stored).not.toContain(Buffer.from(secret).toString('base64url'));
    expect(stored).not.toContain(Buffer.from(secret).toString('hex'));
    for (const code of codes ?? []) expect(stored).not.toContain(code.replaceAll('-', ''));
  });

  it('accepts a code once per time step: the confirming code and a replay are refused', async () => {
    const { totp, user, pending, codeAt, tick } = await setup();
    const first = codeAt();
    await totp.confirm('acme', user.id, pending, first);
    expect(await totp.verify('acme', user.id, first)).toBe(false); // same step as the confirmation
    tick(30_000);
    const next = codeAt();
    expect(await totp.verify('acme', user.id, next)).toBe(true);
    expect(await totp.verify('acme', user.id, next)).toBe(false);
    tick(30_000); // the used code is now one step old: inside the window, still refused
    expect(await totp.verify('acme', user.id, next)).toBe(false);
    expect(await totp.verify('acme', user.id, codeAt(1))).toBe(true); // clock drift ahead
    tick(60_000);
    expect(await totp.verify('acme', user.id, codeAt(-2))).toBe(false); // outside the window
  });

  it('lets exactly one of 20 concurrent submissions of the same code through', async () => {
    const { totp, user, pending, codeAt, tick } = await setup();
    await totp.confirm('acme', user.id, pending, codeAt());
    tick(30_000);
    const code = codeAt();
    const results = await Promise.all(Array.from({ length: 20 }, () => totp.verify('acme', user.id, code)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('takes each recovery code once, even concurrently, however it is typed', async () => {
    const { accounts, totp, user, pending, codeAt } = await setup();
    const codes = (await totp.confirm('acme', user.id, pending, codeAt())) ?? [];
    const [a = '', b = ''] = codes;
    expect(await totp.useRecoveryCode('acme', user.id, a.toLowerCase().replaceAll('-', ' '))).toBe(true);
    expect(await totp.useRecoveryCode('acme', user.id, a)).toBe(false);
    const results = await Promise.all(Array.from({ length: 20 }, () => totp.useRecoveryCode('acme', user.id, b)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect((await accounts.findById('acme', user.id))?.totp?.recoveryCodesLeft).toBe(8);
    expect(await totp.useRecoveryCode('acme', user.id, 'AAAA-AAAA-AAAA-AAAA')).toBe(false);
  });

  it('new recovery codes replace the old; disabling removes the factor', async () => {
    const { accounts, totp, user, pending, codeAt, tick } = await setup();
    const old = (await totp.confirm('acme', user.id, pending, codeAt())) ?? [];
    const fresh = (await totp.replaceRecoveryCodes('acme', user.id)) ?? [];
    expect(fresh).toHaveLength(10);
    expect(await totp.useRecoveryCode('acme', user.id, old[0] ?? '')).toBe(false);
    expect(await totp.useRecoveryCode('acme', user.id, fresh[0] ?? '')).toBe(true);
    expect(await totp.disable('acme', user.id)).toBe(true);
    expect((await accounts.findById('acme', user.id))?.totp).toBeUndefined();
    tick(30_000);
    expect(await totp.verify('acme', user.id, codeAt())).toBe(false);
    expect(await totp.replaceRecoveryCodes('acme', user.id)).toBeUndefined();
  });

  it('cannot open a sealed secret for another user or under another KEK', async () => {
    const { accounts, totp, user, pending } = await setup();
    const other = await accounts.create({ tenant: 'acme', login: 'mallory' });
    await expect(totp.reveal('acme', other.id, pending, 'Acme', 'mallory')).rejects.toThrow();
    const foreign = createTotpService({
      accounts, wrapper: createLocalKeyWrapper(generateKeyEncryptionKey()), stepMarks: createMemoryOneTimeMarks(), recoveryMarks: createMemoryOneTimeMarks(),
    });
    await expect(foreign.reveal('acme', user.id, pending, 'Acme', 'alice')).rejects.toThrow();
  });

  it('matches what authenticator apps compute from the URI', async () => {
    const { uri, secret } = await setup();
    const app = URI.parse(uri) as TOTP;
    const at = 1_800_000_000_000;
    expect(app.generate({ timestamp: at })).toBe(totpCodeAt(secret, timeStep(at)));
    expect(matchTotp(secret, app.generate({ timestamp: at }), at)).toBe(timeStep(at));
  });
});
