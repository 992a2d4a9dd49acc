import { randomBytes } from 'node:crypto';
import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';

/*
 * The agent's OAuthClientProvider for the MCP SDK: it keeps what the SDK hands it in memory
 * (one run of the agent) and passes the authorization URL to the agent, which sends the user
 * there and waits for the redirect. Two things beyond storage:
 * - the client identifies itself by a Client ID Metadata Document URL when it has one (the SDK
 *   uses it when the AS advertises client_id_metadata_document_supported), else the SDK
 *   registers it with RFC 7591 dynamic registration;
 * - step-up: a refresh token cannot widen a grant's scope, so once a server has answered
 *   403 insufficient_scope the refresh token is withheld until new tokens arrive, and the SDK
 *   sends the user to authorize the larger scope instead of refreshing into the same 403.
 */

export interface AgentOAuthProviderOptions {
  redirectUrl: string;
  clientName: string;
  /** An https URL serving this client's metadata document (its client_id). */
  clientMetadataUrl?: string;
  /** A client registered beforehand (client_id, and client_secret for a confidential one): no DCR. */
  clientInformation?: OAuthClientInformationMixed;
  /** Called with the authorization URL the user must visit. */
  onRedirect(url: URL): void;
}

export class AgentOAuthProvider implements OAuthClientProvider {
  readonly redirectUrl: string;
  readonly clientMetadataUrl: string | undefined;
  readonly #metadata: OAuthClientMetadata;
  readonly #onRedirect: (url: URL) => void;
  #client: OAuthClientInformationMixed | undefined;
  #tokens: OAuthTokens | undefined;
  #verifier: string | undefined;
  #discovery: OAuthDiscoveryState | undefined;
  #stepUp = false;
  /** Registrations made through DCR (0 with a metadata document URL). */
  registrations = 0;

  constructor(options: AgentOAuthProviderOptions) {
    this.redirectUrl = options.redirectUrl;
    this.clientMetadataUrl = options.clientMetadataUrl;
    this.#onRedirect = options.onRedirect;
    this.#client = options.clientInformation;
    this.#metadata = {
      client_name: options.clientName,
      redirect_uris: [options.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // A native app keeps no secret (RFC 8252 §8.5): a public client, protected by PKCE.
      token_endpoint_auth_method: 'none',
      software_id: 'castellan-example-agent',
    };
  }

  get clientMetadata(): OAuthClientMetadata {
    return this.#metadata;
  }
  /** CSRF protection for the redirect, and how the callback receiver matches it to its request. */
  state(): string {
    return randomBytes(16).toString('base64url');
  }
  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.#client;
  }
  saveClientInformation(info: OAuthClientInformationMixed): void {
    if (info.client_id !== this.clientMetadataUrl && info.client_id !== this.#client?.client_id) this.registrations += 1;
    this.#client = info;
  }
  tokens(): OAuthTokens | undefined {
    if (this.#stepUp && this.#tokens) {
      const { refresh_token: _withheld, ...rest } = this.#tokens;
      return rest;
    }
    return this.#tokens;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.#tokens = tokens;
    this.#stepUp = false;
  }
  redirectToAuthorization(url: URL): void {
    this.#onRedirect(url);
  }
  saveCodeVerifier(verifier: string): void {
    this.#verifier = verifier;
  }
  codeVerifier(): string {
    if (!this.#verifier) throw new Error('no PKCE code verifier saved');
    return this.#verifier;
  }
  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.#discovery = state;
  }
  discoveryState(): OAuthDiscoveryState | undefined {
    return this.#discovery;
  }
  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    if (scope === 'all' || scope === 'client') this.#client = undefined;
    if (scope === 'all' || scope === 'tokens') this.#tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this.#verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.#discovery = undefined;
  }

  /** A server asked for more scope: the next authorization must involve the user. */
  requireNewAuthorization(): void {
    this.#stepUp = true;
  }
  /** The scopes of the current access token, as the token response said. */
  get grantedScopes(): string[] {
    return (this.#tokens?.scope ?? '').split(' ').filter((s) => s !== '');
  }
  /**
   * The issuer the authorization response must come from (RFC 9207 `iss`), and whether the AS
   * promised to send it.
   */
  expectedIssuer(): { issuer: string; required: boolean } | undefined {
    const discovery = this.#discovery;
    if (!discovery) return undefined;
    const metadata = discovery.authorizationServerMetadata as { issuer?: string; authorization_response_iss_parameter_supported?: unknown } | undefined;
    return {
      issuer: metadata?.issuer ?? discovery.authorizationServerUrl,
      required: metadata?.authorization_response_iss_parameter_supported === true,
    };
  }
}
