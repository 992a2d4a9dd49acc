import { createHash, randomBytes } from 'node:crypto';

interface StoredCookie {
  name: string;
  value: string;
  path: string;
}

/** RFC 6265 §5.1.4: a cookie's default path, from the path of the URL that set it. */
function defaultCookiePath(pathname: string): string {
  if (!pathname.startsWith('/')) return '/';
  const last = pathname.lastIndexOf('/');
  return last === 0 ? '/' : pathname.slice(0, last);
}

/** RFC 6265 §5.1.4: whether a request path is under a cookie's path. */
function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

/**
 * A minimal cookie jar: enough for browser-like walks through the code flow. Like a
 * browser it honours the Path attribute (two tenants on one host set cookies of the same
 * names under /t/<tenant>, and each must get its own): a cookie goes only to URLs under its
 * path, and one name under two paths is two cookies. Domains are not told apart (tests
 * talk to one host).
 */
export class CookieJar {
  /** By path and name (RFC 6265 §5.3: a cookie of the same name and path replaces the old one). */
  readonly #cookies = new Map<string, StoredCookie>();
  /** By name alone, the latest set or cleared: what header() without a URL sends, as the jar did before it knew paths. */
  readonly #latestByName = new Map<string, string>();

  /** Keeps the response's Set-Cookie cookies; `url`, where it came from, gives the default path. */
  store(response: Response, url: string = response.url): void {
    const requestPath = url ? new URL(url).pathname : '/';
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      // The last Path attribute counts; one that is empty or does not start with "/" means the default.
      const pathAttribute = attributes.map((a) => /^\s*path\s*=(.*)$/i.exec(a)?.[1]?.trim()).filter((p) => p !== undefined).at(-1);
      const path = pathAttribute?.startsWith('/') ? pathAttribute : defaultCookiePath(requestPath);
      const key = `${path}\n${name}`;
      const expired = /expires=Thu, 01 Jan 1970/i.test(line) || attributes.some((a) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(a));
      if (expired || value === '') {
        this.#cookies.delete(key);
        this.#latestByName.delete(name);
      } else {
        this.#cookies.set(key, { name, value, path });
        this.#latestByName.set(name, value);
      }
    }
  }

  /**
   * The Cookie header for a request to `url`: the cookies whose path it is under, the longer
   * paths first (RFC 6265 §5.4). Without a URL, as before the jar knew paths: one cookie a
   * name, the value last set (for tests that talk to one tenant).
   */
  header(url?: string): string {
    if (url === undefined) return [...this.#latestByName].map(([n, v]) => `${n}=${v}`).join('; ');
    const requestPath = new URL(url).pathname;
    return [...this.#cookies.values()]
      .filter((c) => pathMatches(requestPath, c.path))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

export interface Browser {
  get(url: string): Promise<Response>;
  postForm(url: string, form: Record<string, string>): Promise<Response>;
}

/**
 * fetch with a cookie jar and no automatic redirects (tests follow them step by step). Like
 * a browser submitting the page it shows, a form post carries the CSRF token of the last
 * Castellan page fetched, unless the test sets `csrf` itself.
 */
export function newBrowser(): Browser {
  const jar = new CookieJar();
  let csrf: string | undefined;
  const send = async (url: string, init: RequestInit) => {
    const response = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, cookie: jar.header(url) } });
    jar.store(response, url);
    if (response.headers.get('content-type')?.includes('text/html')) {
      csrf = /name="csrf" value="([^"]+)"/.exec(await response.clone().text())?.[1] ?? csrf;
    }
    return response;
  };
  return {
    get: (url) => send(url, { method: 'GET', headers: { accept: 'text/html' } }),
    postForm: (url, form) => send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
      body: new URLSearchParams({ ...(csrf !== undefined ? { csrf } : {}), ...form }).toString(),
    }),
  };
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function basicAuth(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

export async function postToken(
  issuer: string,
  form: Record<string, string>,
  authorization?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(authorization ? { authorization } : {}),
    },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/**
 * RFC 7662 introspection at `issuer` as the client `authorization` names; the answer's JSON.
 * Throws on any status but 200 (introspection answers 200 even for dead tokens).
 */
export async function introspect(issuer: string, authorization: string, token: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${issuer}/token/introspection`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
    body: new URLSearchParams({ token: String(token) }).toString(),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`introspection answered ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** The redirect's Location, resolved against the URL that answered; throws when the response is no redirect. */
export function locationOf(response: Response, base: string): string {
  const location = response.headers.get('location');
  if (!location) throw new Error(`expected a redirect, got ${response.status}: ${response.statusText}`);
  return new URL(location, base).href;
}

export interface CodeFlowOptions {
  issuer: string;
  clientId: string;
  redirectUri: string;
  scope: string;
  resource?: string;
  login: string;
  password: string;
  extra?: Record<string, string>;
  /** Push the parameters first (RFC 9126 PAR) and send only client_id + request_uri to /auth. */
  pushed?: boolean;
  /** The browser to use, so its session cookies can be used afterwards. */
  browser?: Browser;
}

export interface CodeFlowResult {
  code: string;
  verifier: string;
  state: string;
  /** The authorization response's parameters (code, state, iss). */
  params: URLSearchParams;
}

/** The token request of a public client redeeming a code flow's code with its PKCE verifier (RFC 6749 §4.1.3, RFC 7636 §4.5). */
export function codeRedemption(flow: Pick<CodeFlowResult, 'code' | 'verifier'>, clientId: string, redirectUri: string): Record<string, string> {
  return { grant_type: 'authorization_code', client_id: clientId, code: flow.code, redirect_uri: redirectUri, code_verifier: flow.verifier };
}

/**
 * Walks the code flow as a browser would: /auth → login page → consent page → redirect
 * to the client with a code. Fails loudly at any unexpected step.
 */
export async function runCodeFlow(options: CodeFlowOptions): Promise<CodeFlowResult> {
  const browser = options.browser ?? newBrowser();
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(8).toString('hex');
  const query = new URLSearchParams({
    client_id: options.clientId,
    response_type: 'code',
    redirect_uri: options.redirectUri,
    scope: options.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...(options.resource ? { resource: options.resource } : {}),
    ...options.extra,
  });
  let url = `${options.issuer}/auth?${query}`;
  if (options.pushed) {
    const response = await fetch(`${options.issuer}/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: query.toString(),
    });
    const body = (await response.json()) as { request_uri?: string };
    if (response.status !== 201 || !body.request_uri) throw new Error(`PAR failed: ${response.status} ${JSON.stringify(body)}`);
    url = `${options.issuer}/auth?${new URLSearchParams({ client_id: options.clientId, request_uri: body.request_uri })}`;
  }
  const params = await followAuthorization(browser, url, options.redirectUri, options.login, options.password);
  const code = params.get('code');
  if (!code) throw new Error(`authorization failed: ${params.toString()}`);
  return { code, verifier, state, params };
}

/**
 * From an authorization URL, signs in and approves as a person would (login page → consent
 * page) until the redirect to the client; returns that redirect's parameters.
 */
export async function followAuthorization(
  browser: Browser,
  authorizationUrl: string,
  redirectUri: string,
  login: string,
  password: string,
): Promise<URLSearchParams> {
  const redirectBase = redirectUri.split('?')[0] ?? '';
  let url = authorizationUrl;
  for (let step = 0; step < 12; step += 1) {
    if (url.startsWith(redirectBase)) return new URL(url).searchParams;
    const response = await browser.get(url);
    if (response.status >= 300 && response.status < 400) {
      url = locationOf(response, url);
      continue;
    }
    const html = await response.text();
    if (response.status !== 200) throw new Error(`unexpected ${response.status} at ${url}: ${html.slice(0, 300)}`);
    const interaction = new URL(url).pathname;
    const next = html.includes('name="password"')
      ? await browser.postForm(`${new URL(url).origin}${interaction}/login`, { login, password })
      : await browser.postForm(`${new URL(url).origin}${interaction}/confirm`, {});
    url = locationOf(next, url);
  }
  throw new Error('authorization did not finish in 12 steps');
}
