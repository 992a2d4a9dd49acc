import { describe, expect, it } from 'vitest';
import { useFreshMongoDatabases } from '../../test/keys/mongo-databases.ts';
import { createMemoryUpstreamLinkStore } from './upstream-links.memory.ts';
import { createMongoUpstreamLinkStore } from './upstream-links.mongo.ts';
import type { UpstreamLinkStore } from './upstream-links.ts';

const freshDb = useFreshMongoDatabases('upstream_links');
const ISSUER = 'https://idp.example/t/a';
const link = (subject: string, userId: string, issuer = ISSUER, tenant = 'acme') => ({ tenant, issuer, subject, userId, idp: 'partner' });

function describeLinkStore(name: string, makeStore: () => UpstreamLinkStore): void {
  describe(`upstream link store (${name})`, () => {
    it('finds nothing before the first link, then the link by tenant, issuer and subject only', async () => {
      const store = makeStore();
      expect(await store.find('acme', ISSUER, 'alice')).toBeUndefined();
      expect(await store.link(link('alice', 'u1'))).toMatchObject({ created: true, link: { userId: 'u1', subject: 'alice', idp: 'partner' } });
      expect((await store.find('acme', ISSUER, 'alice'))?.userId).toBe('u1');
      // Another tenant, another issuer, a subject differing in case: other identities.
      expect(await store.find('other', ISSUER, 'alice')).toBeUndefined();
      expect(await store.find('acme', 'https://idp.example/t/b', 'alice')).toBeUndefined();
      expect(await store.find('acme', ISSUER, 'Alice')).toBeUndefined();
    });

    it('keeps the first link: a later link of the same identity gets the existing one back', async () => {
      const store = makeStore();
      await store.link(link('bob', 'u1'));
      expect(await store.link(link('bob', 'u2'))).toMatchObject({ created: false, link: { userId: 'u1' } });
      expect((await store.find('acme', ISSUER, 'bob'))?.userId).toBe('u1');
    });

    it('cannot be confused by separators inside issuer or subject', async () => {
      const store = makeStore();
      await store.link(link('x","y', 'u1', 'https://a'));
      expect(await store.find('acme', 'https://a","x', 'y')).toBeUndefined();
    });

    it('links exactly once under 30 concurrent first links', async () => {
      const store = makeStore();
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => store.link(link('carol', `u${i}`))));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.link.userId)).size).toBe(1);
    });

    it('refuses malformed input', async () => {
      const store = makeStore();
      await expect(store.link(link('', 'u1'))).rejects.toThrow();
      await expect(store.link(link('s'.repeat(256), 'u1'))).rejects.toThrow();
    });
  });
}

describeLinkStore('memory', () => createMemoryUpstreamLinkStore());
describeLinkStore('FerretDB', () => createMongoUpstreamLinkStore(freshDb()));
