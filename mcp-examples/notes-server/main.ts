import { envPort, envString, runUntilSignal } from '../shared/main.ts';
import { startNotesServer } from './notes-server.ts';

const port = envPort('PORT', 3001);
const issuer = envString('CASTELLAN_ISSUER', 'http://localhost:4000/t/demo');
const resource = envString('NOTES_RESOURCE', `http://localhost:${port}/mcp`);
const host = envString('HOST', '127.0.0.1');

runUntilSignal(
  () => startNotesServer({ port, issuer, resource, host }),
  (server) => `notes MCP server at ${server.url} (tokens from ${issuer}); Ctrl-C stops it`,
);
