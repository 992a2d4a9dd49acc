import { canonicalResourceUrl } from './resource-uri.ts';
import { assertScopeNames } from './scopes.ts';

/** RFC 9728 §2 protected resource metadata, the members this kit publishes. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported?: string[];
  /** Only the Authorization header: tokens in query strings or bodies are refused (RFC 6750 §2, OAuth 2.1). */
  bearer_methods_supported: ['header'];
  resource_name?: string;
  resource_documentation?: string;
}

export interface ProtectedResourceMetadataOptions {
  /** The server's canonical resource URI (RFC 8707 / MCP): what tokens' `aud` must be. */
  resource: string;
  /** The authorization server's issuer, e.g. `https://castellan.example/t/acme`. */
  issuer: string;
  scopesSupported?: readonly string[];
  resourceName?: string;
  resourceDocumentation?: string;
}

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * The paths this resource's metadata is served at: the RFC 9728 §3.1 form first (the well-known
 * prefix inserted before the resource's path: `http://host/mcp` → `/.well-known/oauth-protected-resource/mcp`),
 * then the root form, which MCP clients fall back to. For a resource at the root both are one.
 */
export function protectedResourceMetadataPaths(resource: string): string[] {
  const url = canonicalResourceUrl(resource);
  const path = url.pathname === '/' ? '' : url.pathname;
  return path === '' ? [WELL_KNOWN] : [`${WELL_KNOWN}${path}`, WELL_KNOWN];
}

/** The URL to advertise in WWW-Authenticate `resource_metadata` (RFC 9728 §3.1 / §5.1). */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = canonicalResourceUrl(resource);
  const [path] = protectedResourceMetadataPaths(resource);
  return `${url.origin}${path}`;
}

/** Builds the RFC 9728 document. The `resource` is kept exactly as given: clients compare it byte for byte (§3.3). */
export function protectedResourceMetadata(options: ProtectedResourceMetadataOptions): ProtectedResourceMetadata {
  canonicalResourceUrl(options.resource);
  let issuer: URL;
  try {
    issuer = new URL(options.issuer);
  } catch {
    throw new TypeError(`issuer ${JSON.stringify(options.issuer)} is not an absolute URL`);
  }
  if ((issuer.protocol !== 'https:' && issuer.protocol !== 'http:') || issuer.search !== '' || issuer.hash !== '') {
    throw new TypeError(`issuer ${options.issuer} must be an http(s) URL without query or fragment (RFC 8414 §2)`);
  }
  if (options.scopesSupported) assertScopeNames(options.scopesSupported, 'scopesSupported');
  return {
    resource: options.resource,
    authorization_servers: [options.issuer],
    ...(options.scopesSupported ? { scopes_supported: [...options.scopesSupported] } : {}),
    bearer_methods_supported: ['header'],
    ...(options.resourceName ? { resource_name: options.resourceName } : {}),
    ...(options.resourceDocumentation ? { resource_documentation: options.resourceDocumentation } : {}),
  };
}

/** A response the adapters write as is. */
export interface PlainResponse {
  status: number;
  headers: Record<string, string>;
  body: string | undefined;
}

/**
 * Answers requests for the metadata: a function of (method, pathname) returning the response,
 * or undefined when the path is not one of the document's well-known paths. Shared by the
 * node:http and Koa adapters.
 */
export function protectedResourceMetadataResponder(
  metadata: ProtectedResourceMetadata,
): (method: string, pathname: string) => PlainResponse | undefined {
  const paths = new Set(protectedResourceMetadataPaths(metadata.resource));
  const body = JSON.stringify(metadata);
  // Public metadata: browser-based MCP clients fetch it cross-origin (no cookies are involved).
  const cors = { 'access-control-allow-origin': '*' };
  return (method, pathname) => {
    if (!paths.has(pathname)) return undefined;
    if (method === 'OPTIONS') {
      return { status: 204, headers: { ...cors, 'access-control-allow-methods': 'GET, HEAD, OPTIONS', 'access-control-max-age': '86400' }, body: undefined };
    }
    if (method !== 'GET' && method !== 'HEAD') {
      return {
        status: 405,
        headers: { ...cors, allow: 'GET, HEAD, OPTIONS', 'content-type': 'application/json' },
        body: JSON.stringify({ error: 'invalid_request', error_description: 'method not allowed' }),
      };
    }
    // Node and Koa drop the body of a HEAD response themselves.
    return { status: 200, headers: { ...cors, 'content-type': 'application/json', 'cache-control': 'public, max-age=300' }, body };
  };
}
