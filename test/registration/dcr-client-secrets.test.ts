import { describe, expect, it } from 'vitest';
import {
  acceptEchoedClientSecret,
  hashClientSecret,
  isHashedClientSecret,
  protectStoredClientSecret,
  secretMayBeHashed,
  verifyClientSecret,
} from '../../src/registration/client-secrets.ts';
import { createMemoryModelStores } from '../../src/storage/memory/memory-model-store.ts';
import type { Payload } from '../../src/storage/model-store.ts';
import { createAdapterFactory } from '../../src/storage/oidc-adapter.ts';

const SECRET = 'k'.repeat(86);

describe('client secrets at rest', () => {
  it('hashes the secrets of clients that only ever present them', () => {
    for (const method of ['client_secret_basic', 'client_secret_post', undefined]) {
      expect(secretMayBeHashed({ token_endpoint_auth_method: method, id_token_signed_response_alg: 'RS256' }), String(method)).toBe(true);
    }
  });

  it('keeps the plaintext where oidc-provider derives a key from it, or the method uses it as one', () => {
    expect(secretMayBeHashed({ token_endpoint_auth_method: 'client_secret_jwt' })).toBe(false);
    expect(secretMayBeHashed({ token_endpoint_auth_method: 'private_key_jwt' })).toBe(false);
    expect(secretMayBeHashed({ token_endpoint_auth_method: 'none' })).toBe(false);
    expect(secretMayBeHashed({ id_token_signed_response_alg: 'HS256' })).toBe(false);
    expect(secretMayBeHashed({ userinfo_signed_response_alg: 'HS512' })).toBe(false);
    expect(secretMayBeHashed({ id_token_encrypted_response_alg: 'A128KW' })).toBe(false);
    expect(secretMayBeHashed({ id_token_encrypted_response_alg: 'dir', id_token_encrypted_response_enc: 'A128GCM' })).toBe(false);
    expect(secretMayBeHashed({ request_object_encryption_alg: 'RSA-OAEP', request_object_encryption_enc: 'A256CBC-HS512' })).toBe(false);
  });

  it('stores a tagged digest once, and leaves other records and already hashed secrets alone', () => {
    const stored = protectStoredClientSecret({ client_id: 'c', client_secret: SECRET, token_endpoint_auth_method: 'client_secret_basic' });
    expect(stored.client_secret).toBe(hashClientSecret(SECRET));
    expect(isHashedClientSecret(stored.client_secret)).toBe(true);
    expect(protectStoredClientSecret(stored)).toEqual(stored);
    const keyed: Payload = { client_id: 'c', client_secret: SECRET, id_token_signed_response_alg: 'HS256' };
    expect(protectStoredClientSecret(keyed)).toBe(keyed);
    const publicClient: Payload = { client_id: 'p', token_endpoint_auth_method: 'none' };
    expect(protectStoredClientSecret(publicClient)).toBe(publicClient);
  });

  it('verifies a presented secret against a digest or a plaintext, and never against the digest itself', () => {
    const digest = hashClientSecret(SECRET);
    expect(verifyClientSecret(digest, SECRET)).toBe(true);
    expect(verifyClientSecret(digest, `${SECRET}x`)).toBe(false);
    expect(verifyClientSecret(digest, digest)).toBe(false);
    expect(verifyClientSecret(SECRET, SECRET)).toBe(true);
    expect(verifyClientSecret(SECRET, 'k')).toBe(false);
    expect(verifyClientSecret(undefined, '')).toBe(false);
    expect(verifyClientSecret('', '')).toBe(false);
  });

  it('drops a correctly echoed secret from an RFC 7592 update and passes a wrong one on', () => {
    const digest = hashClientSecret(SECRET);
    expect(acceptEchoedClientSecret({ client_id: 'c', client_secret: SECRET }, digest)).toEqual({ client_id: 'c' });
    expect(acceptEchoedClientSecret({ client_id: 'c', client_secret: 'wrong' }, digest)).toEqual({ client_id: 'c', client_secret: 'wrong' });
    // A plaintext stored secret is oidc-provider's to compare.
    expect(acceptEchoedClientSecret({ client_secret: SECRET }, SECRET)).toEqual({ client_secret: SECRET });
  });

  it('is applied on the way into the store by the adapter for model Client only', async () => {
    const store = createMemoryModelStores().forNamespace('t');
    const adapter = createAdapterFactory({ durable: store, ephemeral: store });
    await adapter('Client').upsert('c', { client_id: 'c', client_secret: SECRET, token_endpoint_auth_method: 'client_secret_post' });
    expect((await store.find('Client', 'c'))?.client_secret).toBe(hashClientSecret(SECRET));
    await adapter('AccessToken').upsert('a', { client_secret: SECRET }, 60);
    expect((await store.find('AccessToken', 'a'))?.client_secret).toBe(SECRET);
  });
});
