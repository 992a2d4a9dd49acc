/*
 * The gateway's side of RFC 8693 token exchange at Castellan: it authenticates as its own
 * confidential client (client_secret_basic) and trades the caller's access token (the
 * subject_token) for a token whose audience is the downstream resource and whose `act` claim
 * names the gateway (and, nested, the agent the user's token was issued to). The caller's
 * token goes to the authorization server that issued it and nowhere else.
 */

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export interface TokenExchangeClientOptions {
  /** The Castellan tenant's issuer; the token endpoint comes from its RFC 8414 metadata. */
  issuer: string;
  clientId: string;
  clientSecret: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface ExchangeRequest {
  /** The caller's access token, as the gateway received it. */
  subjectToken: string;
  /** The downstream resource the new token is for (RFC 8707 / RFC 8693 §2.1 `resource`). */
  resource: string;
  scope?: string;
}

export interface ExchangedToken {
  accessToken: string;
  expiresIn: number | undefined;
  scope: string | undefined;
}

/** The AS refused the exchange (`error` is its OAuth error code) or answered nonsense. */
export class TokenExchangeError extends Error {
  readonly status: number;
  readonly error: string;
  constructor(status: number, error: string, description: string) {
    super(`token exchange failed: ${status} ${error}${description ? ` (${description})` : ''}`);
    this.name = 'TokenExchangeError';
    this.status = status;
    this.error = error;
  }
}

export interface TokenExchangeClient {
  exchange(request: ExchangeRequest): Promise<ExchangedToken>;
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before base64. */
function basicAuthorization(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** RFC 8414 §3.1: the well-known path is inserted before the issuer's path. */
export function authorizationServerMetadataUrl(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}/.well-known/oauth-authorization-server${path}`;
}

async function readJson(response: Response): Promise<Record<string, unknown>> {
  const body: unknown = await response.json().catch(() => undefined);
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

export function createTokenExchangeClient(options: TokenExchangeClientOptions): TokenExchangeClient {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 5000;
  let tokenEndpoint: Promise<string> | undefined;

  async function discoverTokenEndpoint(): Promise<string> {
    const response = await doFetch(authorizationServerMetadataUrl(options.issuer), { signal: AbortSignal.timeout(timeoutMs) });
    const metadata = await readJson(response);
    // RFC 8414 §3.3: the document must name the issuer it was fetched for.
    if (!response.ok || metadata.issuer !== options.issuer || typeof metadata.token_endpoint !== 'string') {
      throw new TokenExchangeError(response.status, 'invalid_metadata', `no usable metadata for ${options.issuer}`);
    }
    return metadata.token_endpoint;
  }

  return {
    async exchange(request) {
      tokenEndpoint ??= discoverTokenEndpoint().catch((error: unknown) => {
        tokenEndpoint = undefined;
        throw error;
      });
      const form = new URLSearchParams({
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: request.subjectToken,
        subject_token_type: ACCESS_TOKEN_TYPE,
        resource: request.resource,
        ...(request.scope ? { scope: request.scope } : {}),
      });
      const response = await doFetch(await tokenEndpoint, {
        method: 'POST',
        headers: {
          authorization: basicAuthorization(options.clientId, options.clientSecret),
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: form.toString(),
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = await readJson(response);
      if (!response.ok) {
        throw new TokenExchangeError(response.status, String(body.error ?? 'error'), String(body.error_description ?? ''));
      }
      if (typeof body.access_token !== 'string' || body.access_token === ''
        || body.issued_token_type !== ACCESS_TOKEN_TYPE || String(body.token_type).toLowerCase() !== 'bearer') {
        throw new TokenExchangeError(response.status, 'invalid_response', 'expected a Bearer access token');
      }
      // An AS that handed back the very token it was given would make us forward the caller's token.
      if (body.access_token === request.subjectToken) {
        throw new TokenExchangeError(response.status, 'invalid_response', 'the AS returned the subject token itself');
      }
      return {
        accessToken: body.access_token,
        expiresIn: typeof body.expires_in === 'number' ? body.expires_in : undefined,
        scope: typeof body.scope === 'string' ? body.scope : undefined,
      };
    },
  };
}
