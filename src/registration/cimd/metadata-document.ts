import { InvalidClientMetadataError } from '../../errors/errors.ts';
import { validateClientMetadata, type ClientMetadata } from '../client-metadata.ts';

/**
 * What a fetched body is, seen from the URL it came from: a Client ID Metadata Document for
 * that URL (a JSON object whose client_id is exactly the URL, CIMD draft §4: simple string
 * comparison, no normalisation), a JSON object naming some other client_id (a document for
 * someone else: refused), or anything else (a JWKS, a sector identifier list). No JWKS or
 * sector identifier document has a client_id, so the tenant fetch can tell documents apart
 * from the other things oidc-provider fetches.
 */
export type FetchedBody =
  | { kind: 'document'; document: Record<string, unknown> }
  | { kind: 'other-client'; clientId: unknown }
  | { kind: 'other' };

export function classifyFetchedBody(url: string, body: string): FetchedBody {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { kind: 'other' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !('client_id' in parsed)) return { kind: 'other' };
  const document = parsed as Record<string, unknown>;
  return document.client_id === url ? { kind: 'document', document } : { kind: 'other-client', clientId: document.client_id };
}

export function isMetadataDocumentFor(url: string, body: string): boolean {
  return classifyFetchedBody(url, body).kind === 'document';
}

/**
 * Castellan's rules on a fetched document (the same as for RFC 7591 registrations, and no
 * shared secrets, CIMD draft §"Client Authentication"), and the normalised metadata
 * oidc-provider gets instead of the raw document: known members only, defaults explicit,
 * application_type native when every redirect URI is loopback or private-use (oidc-provider
 * would otherwise default to web and match loopback ports exactly, which breaks every MCP
 * client that listens on a random port, RFC 8252 §7.3).
 *
 * A document that names no token_endpoint_auth_method is taken as `none`: RFC 7591's default
 * (client_secret_basic) can never apply to a document client, so refusing it helps nobody.
 */
export function normalizeMetadataDocument(
  url: string,
  document: Readonly<Record<string, unknown>>,
  allowedScopes: readonly string[],
): ClientMetadata & { client_id: string } {
  if (document.client_id !== url) throw new InvalidClientMetadataError('client_id in the document must equal the URL it was fetched from');
  if ('client_secret' in document || 'client_secret_expires_at' in document) {
    throw new InvalidClientMetadataError('a client ID metadata document must not contain client_secret');
  }
  const metadata = validateClientMetadata(
    { ...document, token_endpoint_auth_method: document.token_endpoint_auth_method ?? 'none' },
    { allowedScopes, forbidSharedSecrets: true },
  );
  return { ...metadata, client_id: url };
}
