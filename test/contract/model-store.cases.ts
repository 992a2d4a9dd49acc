import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ModelName, ModelStore, Payload } from '../../src/storage/model-store.ts';

/**
 * The one contract every ModelStore backend passes (STYLE.md: like hydra's
 * TestHelperRunner): the same named cases run against memory, MongoDB and Redis, and any
 * future backend proves itself by calling describeModelStoreContract once.
 */

export interface ModelStoreFixture {
  /** A store of a namespace no other test uses. */
  store: ModelStore;
  /** Same backend and connection, a second fresh namespace (for isolation cases). */
  otherNamespace: ModelStore;
  cleanup(): Promise<void>;
}

const HOUR = 3600;

function token(kind: ModelName, jti: string, extra: Payload = {}): Payload {
  const iat = Math.floor(Date.now() / 1000);
  return { iat, exp: iat + HOUR, jti, kind, clientId: 'client-1', accountId: 'account-1', ...extra };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function describeModelStoreContract(name: string, makeStore: () => Promise<ModelStoreFixture>): void {
  describe(`ModelStore contract: ${name}`, () => {
    let fixture: ModelStoreFixture;
    let store: ModelStore;

    beforeEach(async () => {
      fixture = await makeStore();
      store = fixture.store;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    it('finds what upsert stored', async () => {
      const payload = token('AccessToken', 'at-1', { scope: 'openid email', grantId: 'g-1' });
      await store.upsert('AccessToken', 'at-1', payload, HOUR);
      expect(await store.find('AccessToken', 'at-1')).toEqual(payload);
    });

    it('upsert replaces the whole record', async () => {
      await store.upsert('Session', 's-1', token('Session', 's-1', { uid: 'u-1', loginTs: 1, acr: 'pwd' }), HOUR);
      const replacement = token('Session', 's-1', { uid: 'u-1', loginTs: 2 });
      await store.upsert('Session', 's-1', replacement, HOUR);
      expect(await store.find('Session', 's-1')).toEqual(replacement);
    });

    it('a record without expiresIn is kept', async () => {
      const client: Payload = { client_id: 'c-1', redirect_uris: ['https://app.example/cb'] };
      await store.upsert('Client', 'c-1', client);
      expect(await store.find('Client', 'c-1')).toEqual(client);
    });

    it('find of an unknown id returns undefined', async () => {
      await store.upsert('AccessToken', 'known', token('AccessToken', 'known'), HOUR);
      expect(await store.find('AccessToken', 'unknown')).toBeUndefined();
      // Same id, another model: models never share records.
      expect(await store.find('RefreshToken', 'known')).toBeUndefined();
    });

    it('an expired record is gone from every read, and a live one stays', async () => {
      const short = token('DeviceCode', 'dc-short', { grantId: 'g-exp', uid: 'u-short', userCode: 'SHORT-CODE' });
      await store.upsert('DeviceCode', 'dc-short', short, 1);
      await store.upsert('DeviceCode', 'dc-long', token('DeviceCode', 'dc-long', { userCode: 'LONG-CODE' }), HOUR);
      expect(await store.find('DeviceCode', 'dc-short')).toEqual(short);
      await sleep(1100);
      expect(await store.find('DeviceCode', 'dc-short')).toBeUndefined();
      expect(await store.findByUid('DeviceCode', 'u-short')).toBeUndefined();
      expect(await store.findByUserCode('DeviceCode', 'SHORT-CODE')).toBeUndefined();
      expect(await store.consume('DeviceCode', 'dc-short')).toBe(false);
      expect(await store.findByUserCode('DeviceCode', 'LONG-CODE')).toMatchObject({ jti: 'dc-long' });
    });

    it('an upsert whose expiresIn has already run out leaves no record', async () => {
      await store.upsert('Interaction', 'i-1', token('Interaction', 'i-1'), HOUR);
      await store.upsert('Interaction', 'i-1', token('Interaction', 'i-1'), 0);
      await store.upsert('Interaction', 'i-2', token('Interaction', 'i-2'), -5);
      expect(await store.find('Interaction', 'i-1')).toBeUndefined();
      expect(await store.find('Interaction', 'i-2')).toBeUndefined();
    });

    it('findByUid finds the record of that model carrying the uid', async () => {
      const session = token('Session', 's-1', { uid: 'uid-1' });
      await store.upsert('Session', 's-1', session, HOUR);
      await store.upsert('Session', 's-2', token('Session', 's-2', { uid: 'uid-2' }), HOUR);
      expect(await store.findByUid('Session', 'uid-1')).toEqual(session);
      expect(await store.findByUid('Session', 'uid-3')).toBeUndefined();
      expect(await store.findByUid('Interaction', 'uid-1')).toBeUndefined();
    });

    it('findByUserCode finds the record of that model carrying the user code', async () => {
      const code = token('DeviceCode', 'dc-1', { userCode: 'BDWP-HQPK' });
      await store.upsert('DeviceCode', 'dc-1', code, HOUR);
      expect(await store.findByUserCode('DeviceCode', 'BDWP-HQPK')).toEqual(code);
      expect(await store.findByUserCode('DeviceCode', 'XXXX-XXXX')).toBeUndefined();
      expect(await store.findByUserCode('AuthorizationCode', 'BDWP-HQPK')).toBeUndefined();
    });

    it('a uid changed by upsert no longer finds the record', async () => {
      await store.upsert('Session', 's-1', token('Session', 's-1', { uid: 'old-uid' }), HOUR);
      await store.upsert('Session', 's-1', token('Session', 's-1', { uid: 'new-uid' }), HOUR);
      expect(await store.findByUid('Session', 'old-uid')).toBeUndefined();
      expect(await store.findByUid('Session', 'new-uid')).toMatchObject({ jti: 's-1' });
    });

    it('destroy removes the record and its lookups', async () => {
      await store.upsert('DeviceCode', 'dc-1', token('DeviceCode', 'dc-1', { uid: 'u-1', userCode: 'CODE-1', grantId: 'g-1' }), HOUR);
      await store.upsert('DeviceCode', 'dc-2', token('DeviceCode', 'dc-2', { grantId: 'g-1' }), HOUR);
      await store.destroy('DeviceCode', 'dc-1');
      expect(await store.find('DeviceCode', 'dc-1')).toBeUndefined();
      expect(await store.findByUid('DeviceCode', 'u-1')).toBeUndefined();
      expect(await store.findByUserCode('DeviceCode', 'CODE-1')).toBeUndefined();
      expect(await store.find('DeviceCode', 'dc-2')).toMatchObject({ jti: 'dc-2' });
      await store.destroy('DeviceCode', 'never-existed');
    });

    it('consume marks the record consumed and succeeds only once', async () => {
      await store.upsert('AuthorizationCode', 'code-1', token('AuthorizationCode', 'code-1', { uid: 'u-1' }), HOUR);
      expect((await store.find('AuthorizationCode', 'code-1'))?.consumed).toBeUndefined();
      const before = Math.floor(Date.now() / 1000);
      expect(await store.consume('AuthorizationCode', 'code-1')).toBe(true);
      const consumed: unknown = (await store.find('AuthorizationCode', 'code-1'))?.consumed;
      expect(consumed).toBeTypeOf('number');
      expect(consumed).toBeGreaterThanOrEqual(before);
      expect(consumed).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
      expect((await store.findByUid('AuthorizationCode', 'u-1'))?.consumed).toBe(consumed);
      expect(await store.consume('AuthorizationCode', 'code-1')).toBe(false);
      expect((await store.find('AuthorizationCode', 'code-1'))?.consumed).toBe(consumed);
    });

    // STORES.md: FerretDB's conditional updates let several callers win; only an insert
    // with a unique key is race-safe. Several rounds, because a race does not lose every time.
    it('50 concurrent consumes of one record give exactly one winner', async () => {
      for (let round = 0; round < 5; round += 1) {
        const id = `race-${round}`;
        await store.upsert('RefreshToken', id, token('RefreshToken', id, { grantId: 'g-race' }), HOUR);
        const results = await Promise.all(Array.from({ length: 50 }, () => store.consume('RefreshToken', id)));
        expect(results.filter(Boolean), `winners in round ${round}`).toHaveLength(1);
      }
    });

    it('consume of a missing record returns false and creates nothing', async () => {
      expect(await store.consume('AuthorizationCode', 'missing')).toBe(false);
      expect(await store.find('AuthorizationCode', 'missing')).toBeUndefined();
    });

    // A stale copy of a code saved after its redemption must not make it redeemable again.
    it('an upsert does not re-arm a consumed record', async () => {
      const payload = token('AuthorizationCode', 'code-1');
      await store.upsert('AuthorizationCode', 'code-1', payload, HOUR);
      expect(await store.consume('AuthorizationCode', 'code-1')).toBe(true);
      await store.upsert('AuthorizationCode', 'code-1', payload, HOUR);
      expect((await store.find('AuthorizationCode', 'code-1'))?.consumed).toBeTypeOf('number');
      expect(await store.consume('AuthorizationCode', 'code-1')).toBe(false);
    });

    it('a payload saved with consumed set cannot be consumed', async () => {
      const payload = token('AuthorizationCode', 'code-1', { consumed: 1_700_000_000 });
      await store.upsert('AuthorizationCode', 'code-1', payload, HOUR);
      expect(await store.consume('AuthorizationCode', 'code-1')).toBe(false);
      expect(await store.find('AuthorizationCode', 'code-1')).toEqual(payload);
    });

    it('revokeByGrantId removes every model of that grant and nothing of other grants', async () => {
      const revoked: Array<[ModelName, string, Payload]> = [
        ['AccessToken', 'at-1', { grantId: 'g-1' }],
        ['RefreshToken', 'rt-1', { grantId: 'g-1' }],
        ['AuthorizationCode', 'code-1', { grantId: 'g-1' }],
        ['DeviceCode', 'dc-1', { grantId: 'g-1', userCode: 'CODE-1' }],
        ['BackchannelAuthenticationRequest', 'ciba-1', { grantId: 'g-1' }],
        ['Interaction', 'i-1', { grantId: 'g-1', uid: 'u-1' }],
      ];
      for (const [model, id, extra] of revoked) await store.upsert(model, id, token(model, id, extra), HOUR);
      expect(await store.consume('AuthorizationCode', 'code-1')).toBe(true);
      await store.upsert('AccessToken', 'at-2', token('AccessToken', 'at-2', { grantId: 'g-2' }), HOUR);
      await store.upsert('RefreshToken', 'rt-2', token('RefreshToken', 'rt-2', { grantId: 'g-2' }), HOUR);
      await store.upsert('AccessToken', 'at-3', token('AccessToken', 'at-3'), HOUR);

      await store.revokeByGrantId('g-1');

      for (const [model, id] of revoked) expect(await store.find(model, id), `${model} ${id}`).toBeUndefined();
      expect(await store.findByUserCode('DeviceCode', 'CODE-1')).toBeUndefined();
      expect(await store.findByUid('Interaction', 'u-1')).toBeUndefined();
      expect(await store.find('AccessToken', 'at-2')).toMatchObject({ grantId: 'g-2' });
      expect(await store.find('RefreshToken', 'rt-2')).toMatchObject({ grantId: 'g-2' });
      expect(await store.find('AccessToken', 'at-3')).toMatchObject({ jti: 'at-3' });
      await store.revokeByGrantId('g-unknown');
    });

    it('a record re-saved under another grant is revoked with that grant only', async () => {
      await store.upsert('AccessToken', 'at-1', token('AccessToken', 'at-1', { grantId: 'g-old' }), HOUR);
      await store.upsert('AccessToken', 'at-1', token('AccessToken', 'at-1', { grantId: 'g-new' }), HOUR);
      await store.revokeByGrantId('g-old');
      expect(await store.find('AccessToken', 'at-1')).toMatchObject({ grantId: 'g-new' });
      await store.revokeByGrantId('g-new');
      expect(await store.find('AccessToken', 'at-1')).toBeUndefined();
    });

    it('revokeByClientId removes every record issued to that client and nothing of other clients', async () => {
      const mine: Array<[ModelName, string, Payload]> = [
        ['AccessToken', 'at-1', { clientId: 'c-del', grantId: 'g-1' }],
        ['RefreshToken', 'rt-1', { clientId: 'c-del', grantId: 'g-1' }],
        ['AuthorizationCode', 'code-1', { clientId: 'c-del', grantId: 'g-1' }],
        ['ClientCredentials', 'cc-1', { clientId: 'c-del' }],
        ['DeviceCode', 'dc-1', { clientId: 'c-del', userCode: 'CODE-1' }],
        ['Interaction', 'i-1', { clientId: 'c-del', uid: 'u-1' }],
        ['Grant', 'g-1', { clientId: 'c-del', accountId: 'account-1' }],
        ['RegistrationAccessToken', 'rat-1', { clientId: 'c-del' }],
      ];
      for (const [model, id, extra] of mine) await store.upsert(model, id, token(model, id, extra), HOUR);
      expect(await store.consume('AuthorizationCode', 'code-1')).toBe(true);
      const client: Payload = { client_id: 'c-del', redirect_uris: ['https://app.example/cb'] };
      await store.upsert('Client', 'c-del', client);
      await store.upsert('AccessToken', 'at-2', token('AccessToken', 'at-2', { clientId: 'c-other', grantId: 'g-2' }), HOUR);
      await store.upsert('RegistrationAccessToken', 'rat-2', token('RegistrationAccessToken', 'rat-2', { clientId: 'c-other' }), HOUR);
      await fixture.otherNamespace.upsert('AccessToken', 'at-1', token('AccessToken', 'at-1', { clientId: 'c-del' }), HOUR);

      await store.revokeByClientId('c-del');

      for (const [model, id] of mine) expect(await store.find(model, id), `${model} ${id}`).toBeUndefined();
      expect(await store.findByUserCode('DeviceCode', 'CODE-1')).toBeUndefined();
      expect(await store.findByUid('Interaction', 'u-1')).toBeUndefined();
      // The Client record names itself in client_id, not clientId: deleting it is the caller's step.
      expect(await store.find('Client', 'c-del')).toEqual(client);
      expect(await store.find('AccessToken', 'at-2')).toMatchObject({ clientId: 'c-other' });
      expect(await store.find('RegistrationAccessToken', 'rat-2')).toMatchObject({ clientId: 'c-other' });
      expect(await fixture.otherNamespace.find('AccessToken', 'at-1')).toMatchObject({ clientId: 'c-del' });
      // Revoking the grant later finds nothing left, and an unknown client is no error.
      await store.revokeByGrantId('g-1');
      await store.revokeByClientId('c-unknown');
    });

    it('revokeByClientId limited to some models leaves the client\'s other records', async () => {
      await store.upsert('RegistrationAccessToken', 'rat-old', token('RegistrationAccessToken', 'rat-old', { clientId: 'c-1' }));
      await store.upsert('RegistrationAccessToken', 'rat-other', token('RegistrationAccessToken', 'rat-other', { clientId: 'c-2' }));
      await store.upsert('RefreshToken', 'rt-1', token('RefreshToken', 'rt-1', { clientId: 'c-1', grantId: 'g-1' }), HOUR);
      await store.upsert('Grant', 'g-1', token('Grant', 'g-1', { clientId: 'c-1' }), HOUR);

      await store.revokeByClientId('c-1', ['RegistrationAccessToken']);

      expect(await store.find('RegistrationAccessToken', 'rat-old')).toBeUndefined();
      expect(await store.find('RegistrationAccessToken', 'rat-other')).toMatchObject({ clientId: 'c-2' });
      expect(await store.find('RefreshToken', 'rt-1')).toMatchObject({ clientId: 'c-1' });
      expect(await store.find('Grant', 'g-1')).toMatchObject({ clientId: 'c-1' });
      await store.revokeByClientId('c-1');
      expect(await store.find('RefreshToken', 'rt-1')).toBeUndefined();
      expect(await store.find('Grant', 'g-1')).toBeUndefined();
    });

    it('revokeByClientId still finds a client\'s live records after others of it expired', async () => {
      await store.upsert('AuthorizationCode', 'code-short', token('AuthorizationCode', 'code-short', { clientId: 'c-1' }), 1);
      await sleep(1100);
      await store.upsert('AuthorizationCode', 'code-long', token('AuthorizationCode', 'code-long', { clientId: 'c-1' }), HOUR);
      expect(await store.find('AuthorizationCode', 'code-short')).toBeUndefined();
      await store.revokeByClientId('c-1');
      expect(await store.find('AuthorizationCode', 'code-long')).toBeUndefined();
    });

    it('namespaces are isolated: the same id lives separately in each', async () => {
      const other = fixture.otherNamespace;
      const mine = token('RefreshToken', 'rt-1', { grantId: 'g-1', uid: 'u-1', scope: 'mine' });
      const theirs = token('RefreshToken', 'rt-1', { grantId: 'g-1', uid: 'u-1', scope: 'theirs' });
      await store.upsert('RefreshToken', 'rt-1', mine, HOUR);
      await other.upsert('RefreshToken', 'rt-1', theirs, HOUR);
      expect(await store.find('RefreshToken', 'rt-1')).toEqual(mine);
      expect(await other.findByUid('RefreshToken', 'u-1')).toEqual(theirs);

      expect(await store.consume('RefreshToken', 'rt-1')).toBe(true);
      expect((await other.find('RefreshToken', 'rt-1'))?.consumed).toBeUndefined();
      expect(await other.consume('RefreshToken', 'rt-1')).toBe(true);

      await store.revokeByGrantId('g-1');
      expect(await store.find('RefreshToken', 'rt-1')).toBeUndefined();
      expect(await other.find('RefreshToken', 'rt-1')).toMatchObject({ scope: 'theirs' });
      await other.destroy('RefreshToken', 'rt-1');
      await store.upsert('AccessToken', 'at-1', token('AccessToken', 'at-1'), HOUR);
      expect(await other.find('AccessToken', 'at-1')).toBeUndefined();
    });

    it('a payload with nested objects, arrays and odd keys round-trips exactly', async () => {
      const payload: Payload = {
        ...token('Grant', 'grant-1'),
        openid: { scope: 'openid email', claims: ['sub', 'email'] },
        resources: { 'https://api.example.com/': 'read write' },
        rejected: [],
        empty: {},
        claims: { id_token: { 'https://example.com/roles': { essential: true }, email: null } },
        rar: [{ type: 'payment', amounts: [1, 2.5, -3], nested: [[], [{}], [[null]]] }],
        '$not-an-operator': 'kept',
        'dotted.key': 'kept',
        unicode: 'Grüße, 世界, 🔐, "quotes" and \\ backslash',
        big: Number.MAX_SAFE_INTEGER,
        flags: [true, false],
      };
      await store.upsert('Grant', 'grant-1', payload, HOUR);
      expect(await store.find('Grant', 'grant-1')).toStrictEqual(payload);
      const stored = await store.find('Grant', 'grant-1');
      if (stored !== undefined) stored['openid'] = 'changed by the caller';
      expect(await store.find('Grant', 'grant-1')).toStrictEqual(payload);
    });
  });
}
