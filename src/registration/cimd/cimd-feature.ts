import { createHash } from 'node:crypto';
import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import { CastellanError, InvalidClientMetadataError } from '../../errors/errors.ts';
import type { PolicyHooks } from '../../policy/hooks.ts';
import type { ClientIdMetadataDocumentSettings } from '../../tenants/tenant-settings.ts';
import { validateClientMetadata } from '../client-metadata.ts';
import { createAddressPolicy } from './address-policy.ts';
import type { DocumentCache } from './document-cache.ts';
import {
  createGuardedFetch,
  DEFAULT_MAX_BYTES,
  GuardedFetchError,
  type FetchFunction,
  type GuardedFetchOptions,
  type ResolveHost,
} from './guarded-fetch.ts';
import { hostMatcher } from './host-names.ts';
import { classifyFetchedBody, isMetadataDocumentFor, normalizeMetadataDocument } from './metadata-document.ts';

/**
 * Client ID Metadata Documents on oidc-provider 9's experimental
 * `features.clientIdMetadataDocument` (draft-02): oidc-provider recognises a URL client_id,
 * fetches it through its `fetch` option, checks client_id, shared secrets and URI schemes,
 * keeps documents in a per-process LRU, and asks `allowFetch` before each fetch and
 * `allowClient` before each use. Castellan adds, per tenant:
 *
 * - allowFetch: the tenant's host policy (any / allowlist / denylist);
 * - fetch (createTenantFetch): the SSRF guard (guarded-fetch.ts) with the tenant's
 *   privateNetworkAllowlist, the shared document cache, and our metadata rules applied to
 *   the raw document, handing oidc-provider the normalised metadata;
 * - allowClient: the host policy again, our metadata rules on the client as built, and the
 *   tenant's acceptRegistration policy hook.
 *
 * Any refusal here becomes invalid_client from oidc-provider.
 */

/** The draft revision oidc-provider 9.13 implements; it refuses to start with another `ack`. */
export const CIMD_ACK = 'draft-02';

/**
 * oidc-provider's per-purpose body limits (its default for documents is 5 KiB, which real MCP
 * clients' documents have outgrown). The guarded fetch already caps every raw body at
 * DEFAULT_MAX_BYTES; the normalised document handed on may be slightly larger than the raw
 * one, hence the headroom.
 */
export const CIMD_FETCH_RESPONSE_BODY_LIMITS = {
  'client_id metadata document': 2 * DEFAULT_MAX_BYTES,
  jwks_uri: DEFAULT_MAX_BYTES,
  sector_identifier_uri: DEFAULT_MAX_BYTES,
} as const;

export interface CimdRefusal {
  tenantId: string;
  clientId: string;
  /** host: tenant host policy; fetch: SSRF guard or network; document/client: metadata rules; policy: the hook. */
  stage: 'host' | 'fetch' | 'document' | 'client' | 'policy';
  reason: string;
  /** A stable code when there is one (GuardedFetchError, CastellanError). */
  code?: string;
}

/** oidc-provider reports only "invalid_client"; this says why, for logs and audit. */
export type CimdRefusalListener = (refusal: CimdRefusal) => void;

export interface ClientIdMetadataDocumentFeature {
  enabled: boolean;
  ack: string;
  cacheDuration: { min: number; max: number };
  allowFetch(ctx: KoaContextWithOIDC, clientId: string): Promise<boolean>;
  allowClient(ctx: KoaContextWithOIDC, client: Client): Promise<boolean>;
}

export interface CimdFeatureInput {
  tenantId: string;
  settings: ClientIdMetadataDocumentSettings;
  /** Scopes a document may ask for (its `scope` member). */
  allowedScopes: readonly string[];
  policy: PolicyHooks;
  onRefused?: CimdRefusalListener;
}

/**
 * The tenant's host policy as a predicate on a host name: `any` allows every host (the SSRF
 * guard still applies), `allowlist` only listed hosts, `denylist` all but listed hosts.
 * Entries match exactly, or `*.example.com` matches every name below example.com (not the
 * apex); case, IDN spelling and a trailing dot do not matter.
 */
export function hostPolicy(hosts: ClientIdMetadataDocumentSettings['hosts']): (host: string) => boolean {
  const listed = hostMatcher(hosts.list);
  if (hosts.mode === 'allowlist') return listed;
  if (hosts.mode === 'denylist') return (host) => !listed(host);
  return () => true;
}

function reasonOf(error: unknown): { reason: string; code?: string } {
  if (error instanceof GuardedFetchError || error instanceof CastellanError) return { reason: error.message, code: error.code };
  return { reason: error instanceof Error ? error.message : String(error) };
}

/** The `features.clientIdMetadataDocument` object for one tenant's provider. */
export function clientIdMetadataDocumentFeature(input: CimdFeatureInput): ClientIdMetadataDocumentFeature {
  const { tenantId, settings, allowedScopes, policy } = input;
  const hostAllowed = hostPolicy(settings.hosts);
  const refuse = (clientId: string, stage: CimdRefusal['stage'], reason: string, code?: string): false => {
    input.onRefused?.({ tenantId, clientId, stage, reason, ...(code === undefined ? {} : { code }) });
    return false;
  };
  const hostRefusal = (clientId: string): string | undefined => {
    const host = URL.parse(clientId)?.hostname;
    if (!host) return 'client_id is not a URL';
    return hostAllowed(host) ? undefined : `host ${host} is not allowed by the tenant's ${settings.hosts.mode}`;
  };

  return {
    enabled: settings.enabled,
    ack: CIMD_ACK,
    cacheDuration: { min: Math.min(settings.cacheSeconds.min, settings.cacheSeconds.max), max: settings.cacheSeconds.max },

    async allowFetch(_ctx, clientId) {
      const refused = hostRefusal(clientId);
      return refused === undefined ? true : refuse(clientId, 'host', refused);
    },

    // Runs on every use, cached or not, so a policy change applies to documents already held.
    async allowClient(_ctx, client) {
      const clientId = client.clientId;
      const refused = hostRefusal(clientId);
      if (refused !== undefined) return refuse(clientId, 'host', refused);
      const metadata = client.metadata();
      try {
        validateClientMetadata(metadata, { allowedScopes, forbidSharedSecrets: true });
      } catch (error) {
        if (!(error instanceof CastellanError)) throw error;
        return refuse(clientId, 'client', error.message, error.code);
      }
      const decision = await policy.acceptRegistration({ tenant: tenantId, metadata, kind: 'client-id-metadata-document' });
      return decision.accept ? true : refuse(clientId, 'policy', decision.reason);
    },
  };
}

export interface TenantFetchInput {
  tenantId: string;
  settings: ClientIdMetadataDocumentSettings;
  allowedScopes: readonly string[];
  /** Shared across tenants and nodes: Redis in production, memory otherwise. None: no shared cache. */
  cache?: DocumentCache;
  /** Extra trusted CA certificates (PEM), e.g. a private PKI; certificates are always verified. */
  ca?: GuardedFetchOptions['ca'];
  lookup?: ResolveHost;
  timeoutMs?: number;
  maxBytes?: number;
  onRefused?: CimdRefusalListener;
  onCacheError?(error: unknown): void;
}

/**
 * Cache entries are per tenant and per private-network policy: a document fetched from a
 * private address while the tenant allowed it is not served once the tenant stops allowing it.
 */
function cacheNamespace(tenantId: string, settings: ClientIdMetadataDocumentSettings): string {
  const policy = JSON.stringify([...settings.privateNetworkAllowlist].map((e) => e.trim().toLowerCase()).sort());
  return `${tenantId}:${createHash('sha256').update(policy).digest('base64url').slice(0, 16)}`;
}

/**
 * The `fetch` for one tenant's provider. oidc-provider calls it for metadata documents and
 * for jwks_uri / sector_identifier_uri, so install it whether or not the tenant enables
 * CIMD: every one of those URLs comes from a client. A response that is a metadata document
 * for the URL (client_id equals it) is checked against our rules and replaced by the
 * normalised metadata; one naming another client_id is refused; anything else (a JWKS)
 * passes through unchanged.
 */
export function createTenantFetch(input: TenantFetchInput): FetchFunction {
  const { tenantId, settings, allowedScopes } = input;
  const addresses = createAddressPolicy(settings.privateNetworkAllowlist);
  const guarded = createGuardedFetch({
    allowAddress: addresses.allowAddress,
    ...(input.lookup ? { lookup: input.lookup } : {}),
    ...(input.ca === undefined ? {} : { ca: input.ca }),
    ...(input.timeoutMs === undefined ? {} : { timeoutMs: input.timeoutMs }),
    ...(input.maxBytes === undefined ? {} : { maxBytes: input.maxBytes }),
    ...(input.onCacheError ? { onCacheError: input.onCacheError } : {}),
    ...(input.cache
      ? {
        cache: {
          cache: input.cache,
          namespace: cacheNamespace(tenantId, settings),
          lifetime: settings.cacheSeconds,
          shouldCache: isMetadataDocumentFor,
        },
      }
      : {}),
  });
  const report = (clientId: string, stage: CimdRefusal['stage'], error: unknown) =>
    input.onRefused?.({ tenantId, clientId, stage, ...reasonOf(error) });

  return async function tenantFetch(request, init) {
    const url = request instanceof Request ? request.url : String(request);
    let response: Response;
    try {
      response = await guarded(request, init);
    } catch (error) {
      report(url, 'fetch', error);
      throw error;
    }
    if (response.status !== 200) return response;
    const body = await response.text();
    const fetched = classifyFetchedBody(url, body);
    if (fetched.kind === 'other') return new Response(body, { status: response.status, headers: response.headers });
    let normalized: Record<string, unknown>;
    try {
      if (fetched.kind === 'other-client') {
        throw new InvalidClientMetadataError(`the document at ${url} names another client_id: ${JSON.stringify(fetched.clientId).slice(0, 200)}`);
      }
      normalized = normalizeMetadataDocument(url, fetched.document, allowedScopes);
    } catch (error) {
      report(url, 'document', error);
      throw error;
    }
    const headers = new Headers(response.headers);
    headers.set('content-type', 'application/json');
    headers.delete('content-length');
    return new Response(JSON.stringify(normalized), { status: 200, headers });
  };
}
