import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { z } from 'zod';

/*
 * Cross-app access (MCP SEP-990, "Enterprise-Managed Authorization"): the user signed in to the
 * enterprise's identity provider, not to the MCP server's authorization server. The agent trades
 * the user's ID token at the IdP (RFC 8693) for an Identity Assertion JWT Authorization Grant
 * (ID-JAG) addressed to the MCP server's AS, then presents it there as an RFC 7523 JWT bearer
 * grant, authenticating as its own (confidential) client. No browser, no redirect.
 *
 * The MCP SDK drives it: it discovers the resource and the AS (saveDiscoveryState), then asks
 * prepareTokenRequest for the grant; this provider makes the IdP call there, where it knows the
 * AS's issuer (the ID-JAG's audience) and the resource.
 */

export interface CrossAppAccessOptions {
  /** The enterprise IdP's token endpoint (RFC 8693 token exchange). */
  idpTokenEndpoint: string;
  /** The agent's client_id at the IdP. */
  idpClientId: string;
  /** The user's ID token from the IdP (the subject of the exchange). */
  idToken: string;
  /** The agent's confidential client at the MCP server's AS. */
  clientId: string;
  clientSecret: string;
  fetch?: typeof fetch;
}

const ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';

const exchangeResponseSchema = z.object({
  access_token: z.string().min(1),
  issued_token_type: z.literal(ID_JAG),
});

export class CrossAppAccessProvider implements OAuthClientProvider {
  readonly #options: CrossAppAccessOptions;
  readonly #client: OAuthClientInformationMixed;
  #tokens: OAuthTokens | undefined;
  #discovery: OAuthDiscoveryState | undefined;

  constructor(options: CrossAppAccessOptions) {
    this.#options = options;
    this.#client = { client_id: options.clientId, client_secret: options.clientSecret };
  }

  get redirectUrl(): undefined {
    return undefined;
  }
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'Castellan example agent (cross-app access)',
      redirect_uris: [],
      grant_types: ['urn:ietf:params:oauth:grant-type:jwt-bearer'],
      token_endpoint_auth_method: 'client_secret_basic',
    };
  }
  clientInformation(): OAuthClientInformationMixed {
    return this.#client;
  }
  tokens(): OAuthTokens | undefined {
    return this.#tokens;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.#tokens = tokens;
  }
  redirectToAuthorization(): void {
    throw new Error('cross-app access needs no user redirect');
  }
  saveCodeVerifier(): void {}
  codeVerifier(): string {
    throw new Error('cross-app access uses no authorization code');
  }
  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.#discovery = state;
  }
  discoveryState(): OAuthDiscoveryState | undefined {
    return this.#discovery;
  }

  /** Trades the ID token for an ID-JAG at the IdP, and returns the JWT bearer grant for the AS. */
  async prepareTokenRequest(scope?: string): Promise<URLSearchParams> {
    const discovery = this.#discovery;
    const issuer = discovery?.authorizationServerMetadata?.issuer;
    const resource = discovery?.resourceMetadata?.resource;
    if (!issuer || !resource) throw new Error('cross-app access: the resource and its authorization server were not discovered');
    const exchange = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      requested_token_type: ID_JAG,
      audience: issuer,
      resource,
      subject_token: this.#options.idToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      client_id: this.#options.idpClientId,
    });
    if (scope) exchange.set('scope', scope);
    const response = await (this.#options.fetch ?? fetch)(this.#options.idpTokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: exchange,
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    });
    const body: unknown = await response.json().catch(() => undefined);
    const parsed = exchangeResponseSchema.safeParse(body);
    if (!response.ok || !parsed.success) throw new Error(`cross-app access: the IdP refused the token exchange (HTTP ${response.status})`);
    const grant = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: parsed.data.access_token });
    if (scope) grant.set('scope', scope);
    return grant;
  }
}
