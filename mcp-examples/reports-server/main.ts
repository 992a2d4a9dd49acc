import { envPort, envRequired, envString, runUntilSignal } from '../shared/main.ts';
import { startReportsServer } from './reports-server.ts';

const port = envPort('PORT', 3002);
const issuer = envString('CASTELLAN_ISSUER', 'http://localhost:4000/t/demo');
const resource = envString('REPORTS_RESOURCE', `http://localhost:${port}/api`);
const host = envString('HOST', '127.0.0.1');
const clientId = envString('INTROSPECTION_CLIENT_ID', 'demo-service');
const cacheTtlSeconds = Number(envString('INTROSPECTION_CACHE_SECONDS', '0'));

runUntilSignal(
  async () => startReportsServer({
    port, issuer, resource, host, clientId, cacheTtlSeconds,
    clientSecret: envRequired(
      ['INTROSPECTION_CLIENT_SECRET', 'CASTELLAN_DEMO_CLIENT_SECRET'],
      `the secret of ${clientId}, which introspects tokens (npm start prints demo-service's)`,
    ),
  }),
  (server) => `reports MCP server at ${server.url} (opaque tokens introspected at ${issuer}); Ctrl-C stops it`,
);
