import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { createJwtVerifier, type AuthInfo } from 'castellan/resource-server';
import { callerOf, jsonResult, scopedTool, startMcpHttpServer, type RunningHttpServer } from '../shared/mcp-http-server.ts';

/*
 * The notes MCP server: Castellan issues it RFC 9068 JWT access tokens (the demo tenant's
 * resource http://localhost:3001/mcp), which it verifies offline against the tenant's JWKS.
 * Reading needs notes:read, writing notes:write: a read-only token calling add_note gets
 * 403 insufficient_scope naming notes:write, and the client steps up.
 */

export const NOTES_SCOPES = ['notes:read', 'notes:write'] as const;

export interface NotesServerOptions {
  port: number;
  /** The Castellan tenant's issuer, e.g. http://localhost:4000/t/demo. */
  issuer: string;
  /** This server's canonical URI, known to the tenant as a resource; default http://localhost:<port>/mcp. */
  resource?: string;
  host?: string;
  onError?: (error: unknown) => void;
}

interface Note {
  id: string;
  title: string;
  text: string;
  createdAt: string;
}

/** Each user's notes (by the token's `sub`), in memory. */
class NoteBook {
  readonly #notes = new Map<string, Note[]>();
  list(owner: string): Note[] {
    return this.#notes.get(owner) ?? [];
  }
  add(owner: string, title: string, text: string): Note {
    const note = { id: randomUUID(), title, text, createdAt: new Date().toISOString() };
    this.#notes.set(owner, [...this.list(owner), note]);
    return note;
  }
}

/** Whose notes: the user the token speaks for (for a client's own token, the client). */
function ownerOf(auth: AuthInfo): string {
  const sub = auth.extra?.sub;
  return typeof sub === 'string' ? sub : auth.clientId;
}

export async function startNotesServer(options: NotesServerOptions): Promise<RunningHttpServer> {
  const resource = options.resource ?? `http://localhost:${options.port}/mcp`;
  const notes = new NoteBook();
  const tools = [
    scopedTool('list_notes', ['notes:read'], (server, name) => server.registerTool(name, {
      description: 'Lists your notes (id and title).',
    }, async (extra) => jsonResult(notes.list(ownerOf(callerOf(extra))).map(({ id, title }) => ({ id, title }))))),
    scopedTool('read_note', ['notes:read'], (server, name) => server.registerTool(name, {
      description: 'Reads one of your notes.',
      inputSchema: { id: z.string().describe('the id list_notes gave') },
    }, async ({ id }, extra) => {
      const note = notes.list(ownerOf(callerOf(extra))).find((n) => n.id === id);
      return note ? jsonResult(note) : { isError: true, content: [{ type: 'text', text: `no note ${id}` }] };
    })),
    scopedTool('add_note', ['notes:write'], (server, name) => server.registerTool(name, {
      description: 'Adds a note.',
      inputSchema: { title: z.string().min(1).max(200), text: z.string().max(10_000) },
    }, async ({ title, text }, extra) => jsonResult(notes.add(ownerOf(callerOf(extra)), title, text)))),
  ];
  return startMcpHttpServer({
    name: 'Castellan example: notes',
    resource,
    issuer: options.issuer,
    port: options.port,
    ...(options.host ? { host: options.host } : {}),
    verifier: createJwtVerifier({ issuer: options.issuer, audience: resource }),
    scopesSupported: NOTES_SCOPES,
    requiredScopes: ['notes:read'],
    tools,
    ...(options.onError ? { onError: options.onError } : {}),
  });
}
