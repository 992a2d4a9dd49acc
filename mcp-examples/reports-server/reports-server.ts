import { z } from 'zod';
import { createIntrospectionVerifier } from 'castellan/resource-server';
import { callerOf, jsonResult, scopedTool, startMcpHttpServer, type RunningHttpServer } from '../shared/mcp-http-server.ts';

/*
 * The reports MCP server: Castellan issues it OPAQUE access tokens (the demo tenant's resource
 * http://localhost:3002/api), which only Castellan can read, so every request asks Castellan's
 * RFC 7662 introspection endpoint. With the cache at 0 s (the default here) a revoked token is
 * refused on its very next use; a positive cacheTtlSeconds trades that for fewer round trips.
 */

export const REPORTS_SCOPES = ['reports:read'] as const;

export interface ReportsServerOptions {
  port: number;
  /** The Castellan tenant's issuer; introspection is at <issuer>/token/introspection. */
  issuer: string;
  /** A confidential client of the tenant allowed to introspect (demo-service in the demo). */
  clientId: string;
  clientSecret: string;
  /** This server's canonical URI; default http://localhost:<port>/api. */
  resource?: string;
  /** How long an introspection answer is reused; 0 sees revocations at once. */
  cacheTtlSeconds?: number;
  host?: string;
  onError?: (error: unknown) => void;
}

const REPORTS = [
  { id: 'q1-usage', title: 'Q1 usage', rows: [{ month: 'January', calls: 1200 }, { month: 'February', calls: 1350 }, { month: 'March', calls: 1610 }] },
  { id: 'q1-errors', title: 'Q1 errors', rows: [{ month: 'January', errors: 12 }, { month: 'February', errors: 7 }, { month: 'March', errors: 9 }] },
];

export async function startReportsServer(options: ReportsServerOptions): Promise<RunningHttpServer> {
  const resource = options.resource ?? `http://localhost:${options.port}/api`;
  const tools = [
    scopedTool('list_reports', ['reports:read'], (server, name) => server.registerTool(name, {
      description: 'Lists the available reports.',
    }, async () => jsonResult(REPORTS.map(({ id, title }) => ({ id, title }))))),
    scopedTool('get_report', ['reports:read'], (server, name) => server.registerTool(name, {
      description: 'Returns one report.',
      inputSchema: { id: z.string().describe('the id list_reports gave') },
    }, async ({ id }, extra) => {
      const report = REPORTS.find((r) => r.id === id);
      if (!report) return { isError: true, content: [{ type: 'text', text: `no report ${id}` }] };
      return jsonResult({ ...report, preparedFor: callerOf(extra).extra?.sub });
    })),
  ];
  return startMcpHttpServer({
    name: 'Castellan example: reports',
    resource,
    issuer: options.issuer,
    port: options.port,
    ...(options.host ? { host: options.host } : {}),
    verifier: createIntrospectionVerifier({
      introspectionEndpoint: `${options.issuer}/token/introspection`,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      audience: resource,
      issuer: options.issuer,
      cacheTtlSeconds: options.cacheTtlSeconds ?? 0,
    }),
    scopesSupported: REPORTS_SCOPES,
    requiredScopes: ['reports:read'],
    tools,
    ...(options.onError ? { onError: options.onError } : {}),
  });
}
