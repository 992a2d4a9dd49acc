import { createMemoryTenantStore } from '../../src/tenants/tenant-store.memory.ts';
import { describeTenantStoreContract } from './tenant-store.cases.ts';

describeTenantStoreContract('memory', async (now) => createMemoryTenantStore({ now }));
