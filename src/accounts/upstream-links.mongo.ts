import type { Collection, Db } from 'mongodb';
import { isDuplicateKeyError } from '../storage/mongo/duplicate-key.ts';
import { parseNewLink, upstreamLinkKey, type UpstreamLink, type UpstreamLinkStore, type UpstreamLinkStoreOptions } from './upstream-links.ts';

type LinkDocument = UpstreamLink & { _id: string };

export interface MongoUpstreamLinkStoreOptions extends UpstreamLinkStoreOptions {
  readonly collection?: string;
}

/**
 * UpstreamLinkStore on MongoDB / FerretDB: one document per identity, `_id` from tenant,
 * issuer and subject. Linking is an insert, so of two first sign-ins at once the unique
 * `_id` lets exactly one win, even on FerretDB, whose conditional updates are not atomic
 * (STORES.md); the loser reads the winner's link. Every read is by `_id`.
 */
export function createMongoUpstreamLinkStore(db: Db, options: MongoUpstreamLinkStoreOptions = {}): UpstreamLinkStore {
  const now = options.now ?? (() => new Date());
  const links: Collection<LinkDocument> = db.collection(options.collection ?? 'upstream_links');

  async function find(tenant: string, issuer: string, subject: string): Promise<UpstreamLink | undefined> {
    const doc = await links.findOne({ _id: upstreamLinkKey(tenant, issuer, subject) });
    return doc ? toLink(doc) : undefined;
  }

  return {
    find,
    async link(input) {
      const link: UpstreamLink = { ...parseNewLink(input), createdAt: now() };
      try {
        await links.insertOne({ _id: upstreamLinkKey(link.tenant, link.issuer, link.subject), ...link });
        return { link, created: true };
      } catch (error) {
        if (!isDuplicateKeyError(error)) throw error;
      }
      const winner = await find(link.tenant, link.issuer, link.subject);
      // Links are never deleted, so the document that refused our insert is there to read.
      if (!winner) throw new Error('upstream link vanished after a duplicate-key insert');
      return { link: winner, created: false };
    },
  };
}

function toLink(doc: LinkDocument): UpstreamLink {
  return { tenant: doc.tenant, issuer: doc.issuer, subject: doc.subject, userId: doc.userId, idp: doc.idp, createdAt: doc.createdAt };
}
