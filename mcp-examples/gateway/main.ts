import { envPort, envRequired, envString, runUntilSignal } from '../shared/main.ts';
import { startGateway } from './gateway.ts';

const port = envPort('PORT', 3003);
const issuer = envString('CASTELLAN_ISSUER', 'http://localhost:4000/t/demo');
const resource = envString('GATEWAY_RESOURCE', `http://localhost:${port}/mcp`);
const downstream = envString('DOWNSTREAM_RESOURCE', 'http://localhost:3004/api');
const host = envString('HOST', '127.0.0.1');
// The demo tenant lets demo-service exchange tokens for the downstream API.
const clientId = envString('GATEWAY_CLIENT_ID', 'demo-service');

runUntilSignal(
  async () => startGateway({
    port, issuer, resource, downstream, host,
    clientId,
    clientSecret: envRequired(
      ['GATEWAY_CLIENT_SECRET', 'CASTELLAN_DEMO_CLIENT_SECRET'],
      `the secret of ${clientId}, the gateway's client at Castellan (npm start prints demo-service's)`,
    ),
  }),
  (server) => `gateway MCP server at ${server.url}, calling ${downstream} through token exchange at ${issuer}; Ctrl-C stops it`,
);
