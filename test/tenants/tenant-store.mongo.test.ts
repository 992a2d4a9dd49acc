import { createMongoTenantStore } from '../../src/tenants/tenant-store.mongo.ts';
import { useFreshMongoDatabases } from '../keys/mongo-databases.ts';
import { describeTenantStoreContract } from './tenant-store.cases.ts';

const freshDb = useFreshMongoDatabases('tenants');

describeTenantStoreContract('FerretDB', async (now) => createMongoTenantStore(freshDb(), { now }));
