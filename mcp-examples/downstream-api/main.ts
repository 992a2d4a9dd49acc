import { envPort, envString, runUntilSignal } from '../shared/main.ts';
import { startDownstreamApi } from './downstream-api.ts';

const port = envPort('PORT', 3004);
const issuer = envString('CASTELLAN_ISSUER', 'http://localhost:4000/t/demo');
const resource = envString('DOWNSTREAM_RESOURCE', `http://localhost:${port}/api`);
const host = envString('HOST', '127.0.0.1');

runUntilSignal(
  () => startDownstreamApi({ port, issuer, resource, host }),
  (server) => `downstream API at ${server.url} (GET ${server.url}/whoami; JWTs from ${issuer} for this audience only); Ctrl-C stops it`,
);
