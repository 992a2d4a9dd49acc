import {
  newRevision,
  parseNewTenant,
  parseTenantChanges,
  type TenantRecord,
  type TenantStore,
  type TenantStoreOptions,
} from './tenant-store.ts';

/** In-process TenantStore for tests and the embedded default. */
export function createMemoryTenantStore(options: TenantStoreOptions = {}): TenantStore {
  const now = options.now ?? (() => new Date());
  const tenants = new Map<string, TenantRecord>();

  return {
    async get(id) {
      const tenant = tenants.get(id);
      return tenant && structuredClone(tenant);
    },
    async create(input) {
      const { id, displayName, settings } = parseNewTenant(input);
      if (tenants.has(id)) return false;
      const at = now();
      tenants.set(id, structuredClone({
        id, displayName, settings, revision: newRevision(), createdAt: at, updatedAt: at,
      }));
      return true;
    },
    async update(id, changes) {
      const current = tenants.get(id);
      if (!current) return undefined;
      const revision = newRevision();
      tenants.set(id, { ...current, ...structuredClone(parseTenantChanges(changes)), revision, updatedAt: now() });
      return revision;
    },
    async list() {
      return [...tenants.values()]
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map((tenant) => structuredClone(tenant));
    },
  };
}
