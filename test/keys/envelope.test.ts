import { randomBytes } from 'node:crypto';

import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';

import { decryptPrivateJwk, encryptPrivateJwk, type EncryptedJwk } from '../../src/keys/envelope.ts';
import { KeyDecryptionError } from '../../src/keys/errors.ts';
import {
  combineKeyWrappers,
  createLocalKeyWrapper,
  decodeKeyEncryptionKey,
  generateKeyEncryptionKey,
} from '../../src/keys/kms.ts';

const context = JSON.stringify(['test', 'acme', 'kid-1']);

async function expectDecryptionFailure(promise: Promise<unknown>): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(KeyDecryptionError);
  expect((error as KeyDecryptionError).code).toBe('KEY_DECRYPTION_FAILED');
}

/** Flips one bit in the middle of a base64url value. */
function flip(value: string): string {
  const bytes = Buffer.from(value, 'base64url');
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 1;
  return bytes.toString('base64url');
}

describe('key-encryption keys', () => {
  it('generates 32 random bytes as base64url', () => {
    const kek = generateKeyEncryptionKey();
    expect(kek).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(decodeKeyEncryptionKey(kek)).toHaveLength(32);
    expect(generateKeyEncryptionKey()).not.toBe(kek);
  });

  it('accepts the same key as standard padded base64', () => {
    const raw = randomBytes(32);
    const a = createLocalKeyWrapper(raw.toString('base64url'));
    const b = createLocalKeyWrapper(raw.toString('base64'));
    expect(a.kekId).toBe(b.kekId);
  });

  it('refuses keys of the wrong size or alphabet without echoing them', () => {
    const short = randomBytes(16).toString('base64url');
    expect(() => createLocalKeyWrapper(short)).toThrow(expect.objectContaining({ code: 'INVALID_KEY_ENCRYPTION_KEY' }));
    try {
      createLocalKeyWrapper(short);
    } catch (error) {
      expect(String((error as Error).message)).not.toContain(short);
    }
    expect(() => createLocalKeyWrapper('not a key!')).toThrow(expect.objectContaining({ code: 'INVALID_KEY_ENCRYPTION_KEY' }));
  });
});

describe('envelope encryption of private JWKs', () => {
  let jwk: JWK;
  const wrapper = createLocalKeyWrapper(generateKeyEncryptionKey());

  beforeAll(async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    jwk = await exportJWK(privateKey);
  });

  it('round-trips and stores only base64url strings', async () => {
    const record = await encryptPrivateJwk(jwk, wrapper, context);
    expect(record).toMatchObject({ v: 1, enc: 'A256GCM', wrappedKey: { kekId: wrapper.kekId, alg: 'A256GCM' } });
    expect(Buffer.from(record.iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(record.tag, 'base64url')).toHaveLength(16);
    expect(JSON.stringify(record)).not.toContain(jwk.d);
    expect(await decryptPrivateJwk(JSON.parse(JSON.stringify(record)), wrapper, context)).toEqual(jwk);
  });

  it('uses a fresh data key and IV for every encryption', async () => {
    const a = await encryptPrivateJwk(jwk, wrapper, context);
    const b = await encryptPrivateJwk(jwk, wrapper, context);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ciphertext).not.toBe(b.ciphertext);
    expect(a.wrappedKey.wrapped).not.toBe(b.wrappedKey.wrapped);
  });

  it('fails with the typed error under another KEK, even one claiming the same kekId', async () => {
    const record = await encryptPrivateJwk(jwk, wrapper, context);
    await expectDecryptionFailure(decryptPrivateJwk(record, createLocalKeyWrapper(generateKeyEncryptionKey()), context));
    const impostor = createLocalKeyWrapper(generateKeyEncryptionKey(), { kekId: wrapper.kekId });
    await expectDecryptionFailure(decryptPrivateJwk(record, impostor, context));
  });

  it('fails with the typed error when the record is moved to another tenant or kid', async () => {
    const record = await encryptPrivateJwk(jwk, wrapper, context);
    await expectDecryptionFailure(decryptPrivateJwk(record, wrapper, JSON.stringify(['test', 'acme', 'kid-2'])));
    await expectDecryptionFailure(decryptPrivateJwk(record, wrapper, JSON.stringify(['test', 'evil', 'kid-1'])));
  });

  it('fails with the typed error when any field is tampered with', async () => {
    const record = await encryptPrivateJwk(jwk, wrapper, context);
    const tampered: EncryptedJwk[] = [
      { ...record, iv: flip(record.iv) },
      { ...record, ciphertext: flip(record.ciphertext) },
      { ...record, tag: flip(record.tag) },
      { ...record, wrappedKey: { ...record.wrappedKey, wrapped: flip(record.wrappedKey.wrapped) } },
      { ...record, wrappedKey: { ...record.wrappedKey, alg: 'none' } },
    ];
    for (const t of tampered) await expectDecryptionFailure(decryptPrivateJwk(t, wrapper, context));
    await expectDecryptionFailure(decryptPrivateJwk({ ...record, v: 2 }, wrapper, context));
    await expectDecryptionFailure(decryptPrivateJwk(null, wrapper, context));
  });

  it('reads keys wrapped by a previous KEK after a KEK rotation', async () => {
    const old = createLocalKeyWrapper(generateKeyEncryptionKey());
    const record = await encryptPrivateJwk(jwk, old, context);
    const rotated = combineKeyWrappers(createLocalKeyWrapper(generateKeyEncryptionKey()), [old]);
    expect(await decryptPrivateJwk(record, rotated, context)).toEqual(jwk);
    const fresh = await encryptPrivateJwk(jwk, rotated, context);
    expect(fresh.wrappedKey.kekId).toBe(rotated.kekId);
    await expectDecryptionFailure(decryptPrivateJwk(fresh, old, context));
  });
});
