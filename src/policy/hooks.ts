import type { ResourceSettings } from '../tenants/tenant-settings.ts';

/**
 * Castellan's policy decisions, one named function each, with safe defaults
 * (ARCHITECTURE.md "Policy hooks"). A tenant may override any of them; src/policy/defaults.ts
 * holds the defaults. Hooks receive only what they decide on, never the app.
 */
export interface ResourceAccessRequest {
  tenant: string;
  clientId: string;
  resource: ResourceSettings;
}

export type ResourceAccessDecision =
  | { allow: true; scopes: readonly string[] }
  | { allow: false; reason: string };

export interface RegistrationRequest {
  tenant: string;
  metadata: Readonly<Record<string, unknown>>;
  /** How the client identified itself: RFC 7591 registration or a CIMD URL client_id. */
  kind: 'dynamic-registration' | 'client-id-metadata-document';
}

export type RegistrationDecision = { accept: true } | { accept: false; reason: string };

export interface ConsentRequest {
  tenant: string;
  clientId: string;
  accountId: string;
}

/**
 * remember: ask once, then reuse the user's grant while it covers the request (default);
 * every-time: ask on every authorization; skip: grant what is asked without asking (for
 * first-party clients only). oidc-provider still asks native clients every time (RFC 8252 §8.6).
 */
export type ConsentDecision = 'remember' | 'every-time' | 'skip';

export interface TokenExchangeRequest {
  tenant: string;
  /** The client asking, which becomes the outermost actor. */
  clientId: string;
  /** The subject the new token speaks for. */
  subject: string;
  audience: string;
  /** The act claim the token will carry (undefined when the tenant allows impersonation). */
  act: { sub: string; act?: unknown } | undefined;
  depth: number;
}

export type TokenExchangeDecision = { allow: true } | { allow: false; reason: string };

export interface PolicyHooks {
  /**
   * May this client get a token for this resource, and which scopes may such a token carry?
   * oidc-provider then grants the intersection of these and what was requested.
   */
  resourceAccess(request: ResourceAccessRequest): Promise<ResourceAccessDecision>;
  /** Accept a client that registers itself (used by dynamic registration and CIMD). */
  acceptRegistration(request: RegistrationRequest): Promise<RegistrationDecision>;
  /** Whether the user is asked for consent, and whether the answer is remembered. */
  consent(request: ConsentRequest): Promise<ConsentDecision>;
  /**
   * Beyond the tenant's exchange rules (which client may exchange towards which audience,
   * how deep a chain may grow): may this actor act for this subject here?
   */
  tokenExchange(request: TokenExchangeRequest): Promise<TokenExchangeDecision>;
}
