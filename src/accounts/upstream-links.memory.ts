import { parseNewLink, upstreamLinkKey, type UpstreamLink, type UpstreamLinkStore, type UpstreamLinkStoreOptions } from './upstream-links.ts';

/** In-process UpstreamLinkStore for tests and the embedded default; same keys as MongoDB's. */
export function createMemoryUpstreamLinkStore(options: UpstreamLinkStoreOptions = {}): UpstreamLinkStore {
  const now = options.now ?? (() => new Date());
  const links = new Map<string, UpstreamLink>();
  return {
    async find(tenant, issuer, subject) {
      const link = links.get(upstreamLinkKey(tenant, issuer, subject));
      return link && structuredClone(link);
    },
    async link(input) {
      const link: UpstreamLink = { ...parseNewLink(input), createdAt: now() };
      const key = upstreamLinkKey(link.tenant, link.issuer, link.subject);
      const existing = links.get(key);
      if (existing) return { link: structuredClone(existing), created: false };
      links.set(key, link);
      return { link: structuredClone(link), created: true };
    },
  };
}
