/**
 * Castellan's own errors. Each carries a stable `code` for callers and tests, and the OAuth
 * error it becomes on the wire; src/http/error-response.ts is the one place that renders
 * them. (oidc-provider renders its own errors inside its routes.)
 */
export abstract class CastellanError extends Error {
  abstract readonly code: string;
  abstract readonly status: number;
  abstract readonly oauthError: string;
  readonly headers: Readonly<Record<string, string>> = {};
}

export class TenantNotFoundError extends CastellanError {
  readonly code = 'TENANT_NOT_FOUND';
  readonly status = 404;
  readonly oauthError = 'invalid_request';
  constructor(tenant: string) {
    super(`unknown tenant "${tenant.slice(0, 64)}"`);
    this.name = 'TenantNotFoundError';
  }
}

export class NotFoundError extends CastellanError {
  readonly code = 'NOT_FOUND';
  readonly status = 404;
  readonly oauthError = 'invalid_request';
  constructor(message = 'no such endpoint') {
    super(message);
    this.name = 'NotFoundError';
  }
}

export class PayloadTooLargeError extends CastellanError {
  readonly code = 'PAYLOAD_TOO_LARGE';
  readonly status = 413;
  readonly oauthError = 'invalid_request';
  constructor(limitBytes: number) {
    super(`request body exceeds the limit of ${limitBytes} bytes`);
    this.name = 'PayloadTooLargeError';
  }
}

export class UnsupportedMediaTypeError extends CastellanError {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
  readonly status = 415;
  readonly oauthError = 'invalid_request';
  constructor(expected: string) {
    super(`request body must be ${expected}`);
    this.name = 'UnsupportedMediaTypeError';
  }
}

export class InvalidRequestError extends CastellanError {
  readonly code = 'INVALID_REQUEST';
  readonly status = 400;
  readonly oauthError = 'invalid_request';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}

export class MethodNotAllowedError extends CastellanError {
  readonly code = 'METHOD_NOT_ALLOWED';
  readonly status = 405;
  readonly oauthError = 'invalid_request';
  override readonly headers: Readonly<Record<string, string>>;
  constructor(allowed: readonly string[]) {
    super(`method not allowed; use ${allowed.join(' or ')}`);
    this.name = 'MethodNotAllowedError';
    this.headers = { Allow: allowed.join(', ') };
  }
}

export class ServiceUnavailableError extends CastellanError {
  readonly code = 'SERVICE_UNAVAILABLE';
  readonly status = 503;
  readonly oauthError = 'temporarily_unavailable';
  override readonly headers: Readonly<Record<string, string>> = { 'Retry-After': '5' };
  constructor(message = 'the server cannot reach its storage; try again shortly') {
    super(message);
    this.name = 'ServiceUnavailableError';
  }
}

/** RFC 7591 §3.2.2 registration errors. */
export class InvalidRedirectUriError extends CastellanError {
  readonly code = 'INVALID_REDIRECT_URI';
  readonly status = 400;
  readonly oauthError = 'invalid_redirect_uri';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRedirectUriError';
  }
}

export class InvalidClientMetadataError extends CastellanError {
  readonly code = 'INVALID_CLIENT_METADATA';
  readonly status = 400;
  readonly oauthError = 'invalid_client_metadata';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidClientMetadataError';
  }
}

export class InvalidSoftwareStatementError extends CastellanError {
  readonly code = 'INVALID_SOFTWARE_STATEMENT';
  readonly status = 400;
  readonly oauthError = 'invalid_software_statement';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidSoftwareStatementError';
  }
}

export class UnapprovedSoftwareStatementError extends CastellanError {
  readonly code = 'UNAPPROVED_SOFTWARE_STATEMENT';
  readonly status = 400;
  readonly oauthError = 'unapproved_software_statement';
  constructor(message: string) {
    super(message);
    this.name = 'UnapprovedSoftwareStatementError';
  }
}

/** A registration refused by policy or mode (RFC 7591 leaves the code open; 403 says "not you"). */
export class RegistrationRefusedError extends CastellanError {
  readonly code = 'REGISTRATION_REFUSED';
  readonly status = 403;
  readonly oauthError = 'access_denied';
  constructor(message: string) {
    super(message);
    this.name = 'RegistrationRefusedError';
  }
}

export class TooManyRequestsError extends CastellanError {
  readonly code = 'TOO_MANY_REQUESTS';
  readonly status = 429;
  // Not slow_down (RFC 8628 device polling): the MCP SDK knows too_many_requests and
  // surfaces it as such instead of a generic server error.
  readonly oauthError = 'too_many_requests';
  override readonly headers: Readonly<Record<string, string>>;
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.name = 'TooManyRequestsError';
    this.headers = { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) };
  }
}

/** RFC 8628 §3.5: the device polls faster than its interval; the new interval is in the text. */
export class SlowDownError extends CastellanError {
  readonly code = 'SLOW_DOWN';
  readonly status = 400;
  readonly oauthError = 'slow_down';
  readonly interval: number;
  constructor(intervalSeconds: number) {
    super(`polling too fast: wait at least ${intervalSeconds} seconds between requests`);
    this.name = 'SlowDownError';
    this.interval = intervalSeconds;
  }
}

/** A form post without the token of the page Castellan rendered for it. */
export class CsrfError extends CastellanError {
  readonly code = 'CSRF';
  readonly status = 403;
  readonly oauthError = 'invalid_request';
  constructor() {
    super('missing or invalid CSRF token: reload the page and try again');
    this.name = 'CsrfError';
  }
}

/** A bearer-token protected endpoint (e.g. /metrics) called without its token (RFC 6750 §3). */
export class BearerTokenRequiredError extends CastellanError {
  readonly code = 'BEARER_TOKEN_REQUIRED';
  readonly status = 401;
  readonly oauthError = 'invalid_token';
  override readonly headers: Readonly<Record<string, string>> = { 'WWW-Authenticate': 'Bearer error="invalid_token"' };
  constructor(message: string) {
    super(message);
    this.name = 'BearerTokenRequiredError';
  }
}

/** An operator's create that names something existing (admin API: 409). */
export class ConflictError extends CastellanError {
  readonly code = 'CONFLICT';
  readonly status = 409;
  readonly oauthError = 'invalid_request';
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

/** RFC 6750 §3.1: a valid token without the scope this request needs. */
export class InsufficientScopeError extends CastellanError {
  readonly code = 'INSUFFICIENT_SCOPE';
  readonly status = 403;
  readonly oauthError = 'insufficient_scope';
  override readonly headers: Readonly<Record<string, string>>;
  constructor(scope: string) {
    super(`this request needs the scope "${scope}"`);
    this.name = 'InsufficientScopeError';
    this.headers = { 'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${scope}"` };
  }
}

/**
 * RFC 6750 §3.1: no bearer token, or one that is not valid here (bad signature, expired,
 * another issuer or audience). Without a token the challenge carries no error code (§3).
 */
export class InvalidTokenError extends CastellanError {
  readonly code = 'INVALID_TOKEN';
  readonly status = 401;
  readonly oauthError = 'invalid_token';
  override readonly headers: Readonly<Record<string, string>>;
  constructor(message: string, options: { realm: string; missing?: boolean }) {
    super(message);
    this.name = 'InvalidTokenError';
    this.headers = {
      'WWW-Authenticate': options.missing ? `Bearer realm="${options.realm}"` : `Bearer realm="${options.realm}", error="invalid_token", error_description="${message.replace(/["\\]/g, '')}"`,
    };
  }
}
