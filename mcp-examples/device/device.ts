import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { setTimeout as delay } from 'node:timers/promises';
import QRCode from 'qrcode';

/*
 * A device without a browser or a keyboard (a sensor, a TV, a CLI on a server, a headless
 * agent) signing in through a person on another screen: the RFC 8628 device authorization
 * grant. It reads the tenant's RFC 8414 metadata, asks the device authorization endpoint for a
 * code, shows the person where to go (URL, user code, and a QR code of verification_uri_complete
 * for a phone), polls the token endpoint no faster than it is told to, and calls the MCP server
 * with the access token it gets.
 */

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** What the person needs (RFC 8628 §3.2), as the device shows it. */
export interface UserCodeInfo {
  userCode: string;
  verificationUri: string;
  /** The URI with the code in it (optional in RFC 8628); the QR code encodes it. */
  verificationUriComplete: string | undefined;
  /** Seconds the codes live. */
  expiresIn: number;
  /** Seconds between polls, as the AS asked (5 when it did not say). */
  interval: number;
}

export interface DeviceTokens {
  accessToken: string;
  tokenType: string;
  expiresIn: number | undefined;
  /** The scopes granted (the requested ones when the AS did not say). */
  scope: string;
  refreshToken: string | undefined;
}

export interface DeviceResult {
  tokens: DeviceTokens;
  /** The MCP server's tools. */
  tools: string[];
  /** The result of the list_notes call. */
  notes: CallToolResult;
  /** Token requests made until the person answered. */
  polls: number;
}

export type QrStyle = 'terminal' | 'utf8' | 'none';

export interface DeviceOptions {
  /** The Castellan tenant's issuer, e.g. http://localhost:4000/t/demo. */
  issuer: string;
  /** The MCP server: the resource the token is asked for (RFC 8707) and where it is used. */
  serverUrl: string;
  /** Default demo-agent (a public client the demo tenant allows the device grant). */
  clientId?: string;
  /** Default notes:read. */
  scope?: string;
  /**
   * How the QR code is drawn: `terminal` (ANSI colours, black on white whatever the terminal's
   * theme), `utf8` (block characters only, for logs and pipes) or `none`. Default: `terminal`
   * on a TTY, `utf8` otherwise.
   */
  qr?: QrStyle;
  /** Called once the code is shown; a person (or a test) approves it meanwhile. A rejection stops the polling. */
  onUserCode?: (info: UserCodeInfo) => void | Promise<void>;
  fetch?: typeof fetch;
  /** Where the device talks to the person; default console.log. */
  print?: (text: string) => void;
  /** Waits between polls; tests pass one that returns at once (and records the waits). */
  sleep?: (ms: number) => Promise<void>;
  /** Stops the polling (Ctrl-C). */
  signal?: AbortSignal;
  /** Per HTTP request; default 10 s. */
  requestTimeoutMs?: number;
}

/** The device flow ended without tokens; `error` is the OAuth error (access_denied, expired_token, …). */
export class DeviceFlowError extends Error {
  readonly error: string;
  constructor(error: string, message: string) {
    super(message);
    this.name = 'DeviceFlowError';
    this.error = error;
  }
}

const DEFAULT_INTERVAL_S = 5;
/** RFC 8628 §3.5: slow_down adds 5 seconds to the interval, for this and every later request. */
const SLOW_DOWN_STEP_S = 5;
/** Connection failures and 5xx answers in a row before giving up (each doubles the wait, §3.5). */
const MAX_TRANSIENT_FAILURES = 4;

type Json = Record<string, unknown>;

/** RFC 8414 §3.1: the well-known path goes before the issuer's path. */
export function authorizationServerMetadataUrl(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}/.well-known/oauth-authorization-server${path}`;
}

/** Waits, but wakes at once when stopped. */
const abortableSleep = (signal: AbortSignal | undefined) => (ms: number) => delay(ms, undefined, { signal }).catch(() => {});

/** fetch, with a connection failure named by URL and cause (fetch alone says only "fetch failed"). */
async function reach(doFetch: typeof fetch, url: string, init: RequestInit): Promise<Response> {
  try {
    return await doFetch(url, init);
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
    const why = (cause as NodeJS.ErrnoException | undefined)?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
    throw new DeviceFlowError('unreachable', `cannot reach ${url}: ${why}`);
  }
}

async function readJson(response: Response): Promise<Json> {
  const body: unknown = await response.json().catch(() => undefined);
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Json) : {};
}

const str = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);
const positive = (value: unknown): number | undefined =>
  (typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined);

function describeError(body: Json, status: number): string {
  const error = str(body.error) ?? `HTTP ${status}`;
  const description = str(body.error_description);
  return description ? `${error} (${description})` : error;
}

/** The QR code of a URL as text for a terminal. */
export async function renderQr(text: string, style: Exclude<QrStyle, 'none'>): Promise<string> {
  return style === 'terminal'
    ? QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'L' })
    : QRCode.toString(text, { type: 'utf8', errorCorrectionLevel: 'L', margin: 2 });
}

interface Endpoints {
  deviceAuthorization: string;
  token: string;
}

/** The tenant's metadata (RFC 8414), checked to be the issuer's and to offer the device grant. */
async function discover(options: DeviceOptions, doFetch: typeof fetch, timeoutMs: number): Promise<Endpoints> {
  const url = authorizationServerMetadataUrl(options.issuer);
  const response = await reach(doFetch, url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
  const metadata = await readJson(response);
  if (!response.ok) throw new DeviceFlowError('invalid_metadata', `no authorization server metadata at ${url} (HTTP ${response.status})`);
  // RFC 8414 §3.3: the document must name the issuer it was fetched for.
  if (metadata.issuer !== options.issuer) {
    throw new DeviceFlowError('invalid_metadata', `metadata at ${url} is for ${String(metadata.issuer)}, not ${options.issuer}`);
  }
  const deviceAuthorization = str(metadata.device_authorization_endpoint);
  const token = str(metadata.token_endpoint);
  const grants = metadata.grant_types_supported;
  if (!deviceAuthorization || (Array.isArray(grants) && !grants.includes(DEVICE_CODE_GRANT))) {
    throw new DeviceFlowError('unsupported_grant_type', `${options.issuer} does not offer the device authorization grant (RFC 8628)`);
  }
  if (!token) throw new DeviceFlowError('invalid_metadata', `metadata at ${url} has no token_endpoint`);
  return { deviceAuthorization, token };
}

function form(values: Record<string, string>): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(values).toString(),
  };
}

/** RFC 8628 §3.1–3.2: asks for a device code and a user code. */
async function requestCodes(
  endpoint: string, options: DeviceOptions, clientId: string, scope: string, doFetch: typeof fetch, timeoutMs: number,
): Promise<UserCodeInfo & { deviceCode: string }> {
  const response = await reach(doFetch, endpoint, {
    ...form({ client_id: clientId, scope, resource: options.serverUrl }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = await readJson(response);
  if (!response.ok) throw new DeviceFlowError(str(body.error) ?? 'device_authorization_failed', `device authorization refused: ${describeError(body, response.status)}`);
  const deviceCode = str(body.device_code);
  const userCode = str(body.user_code);
  const verificationUri = str(body.verification_uri);
  const expiresIn = positive(body.expires_in);
  if (!deviceCode || !userCode || !verificationUri || !expiresIn) {
    throw new DeviceFlowError('invalid_response', 'device authorization response without device_code, user_code, verification_uri or expires_in');
  }
  return {
    deviceCode,
    userCode,
    verificationUri,
    verificationUriComplete: str(body.verification_uri_complete),
    expiresIn,
    interval: positive(body.interval) ?? DEFAULT_INTERVAL_S,
  };
}

async function showCode(info: UserCodeInfo, print: (text: string) => void, qr: QrStyle): Promise<void> {
  const minutes = Math.max(1, Math.round(info.expiresIn / 60));
  print(`To sign this device in, open\n\n  ${info.verificationUri}\n\nand enter the code\n\n  ${info.userCode}\n`);
  if (info.verificationUriComplete && qr !== 'none') {
    print(`or scan this with a phone (it opens ${info.verificationUriComplete}):\n`);
    print(await renderQr(info.verificationUriComplete, qr));
  }
  print(`The code expires in ${minutes} minute${minutes === 1 ? '' : 's'}. Waiting for you…`);
}

/** Retry-After in seconds (delta-seconds or an HTTP date), if present. */
function retryAfterSeconds(response: Response): number | undefined {
  const value = response.headers.get('retry-after');
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

function tokensFrom(body: Json, requestedScope: string): DeviceTokens {
  const accessToken = str(body.access_token);
  const tokenType = str(body.token_type);
  if (!accessToken || !tokenType || tokenType.toLowerCase() !== 'bearer') {
    throw new DeviceFlowError('invalid_response', 'token response without a bearer access_token');
  }
  return {
    accessToken,
    tokenType,
    expiresIn: positive(body.expires_in),
    scope: str(body.scope) ?? requestedScope,
    refreshToken: str(body.refresh_token),
  };
}

/**
 * RFC 8628 §3.4–3.5: polls the token endpoint until the person answers. The first request
 * waits one interval; every later one waits the (possibly grown) interval again.
 */
async function pollForTokens(
  endpoint: string,
  codes: UserCodeInfo & { deviceCode: string },
  context: {
    clientId: string;
    scope: string;
    resource: string;
    doFetch: typeof fetch;
    sleep: (ms: number) => Promise<void>;
    print: (text: string) => void;
    timeoutMs: number;
    signal: AbortSignal | undefined;
    userFailure: () => Error | undefined;
  },
): Promise<{ tokens: DeviceTokens; polls: number }> {
  const { doFetch, sleep, print } = context;
  let interval = codes.interval;
  let waited = 0;
  let polls = 0;
  let failures = 0;
  const started = Date.now();
  const expired = () => Math.max(waited, (Date.now() - started) / 1000) >= codes.expiresIn;

  for (;;) {
    // Back off exponentially after failed connections (§3.5), never below the interval.
    const wait = interval * 2 ** failures;
    await sleep(wait * 1000);
    waited += wait;
    if (context.signal?.aborted) throw new DeviceFlowError('aborted', 'stopped before the sign-in finished');
    const userFailure = context.userFailure();
    if (userFailure) throw userFailure;
    if (expired()) throw new DeviceFlowError('expired_token', `the code ${codes.userCode} expired before anyone approved it; run the device again for a new one`);

    let response: Response;
    try {
      polls += 1;
      response = await doFetch(endpoint, {
        ...form({ grant_type: DEVICE_CODE_GRANT, device_code: codes.deviceCode, client_id: context.clientId, resource: context.resource }),
        signal: context.signal ? AbortSignal.any([context.signal, AbortSignal.timeout(context.timeoutMs)]) : AbortSignal.timeout(context.timeoutMs),
      });
    } catch (error) {
      if (context.signal?.aborted) throw new DeviceFlowError('aborted', 'stopped before the sign-in finished');
      failures += 1;
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
      const why = (cause as NodeJS.ErrnoException | undefined)?.code ?? (error instanceof Error ? error.message : String(error));
      if (failures > MAX_TRANSIENT_FAILURES) throw new DeviceFlowError('unreachable', `the token endpoint ${endpoint} stopped answering: ${why}`);
      print(`(the token endpoint did not answer: ${why}; trying again in ${interval * 2 ** failures} s)`);
      continue;
    }
    const body = await readJson(response);
    if (response.ok) return { tokens: tokensFrom(body, context.scope), polls };

    const error = str(body.error);
    if (response.status >= 500) {
      failures += 1;
      if (failures > MAX_TRANSIENT_FAILURES) throw new DeviceFlowError('server_error', `the token endpoint keeps failing: ${describeError(body, response.status)}`);
      continue;
    }
    failures = 0;
    switch (error) {
      case 'authorization_pending':
        continue;
      case 'slow_down':
        interval += SLOW_DOWN_STEP_S;
        print(`(asked to slow down: polling every ${interval} s from now on)`);
        continue;
      case 'too_many_requests': {
        // A rate limit outside RFC 8628: wait what it says, and keep to at least a slower interval.
        const retryAfter = retryAfterSeconds(response) ?? interval + SLOW_DOWN_STEP_S;
        interval = Math.max(interval + SLOW_DOWN_STEP_S, Math.ceil(retryAfter));
        continue;
      }
      case 'access_denied':
        throw new DeviceFlowError('access_denied', `sign-in refused: the request for ${codes.userCode} was denied (access_denied)`);
      case 'expired_token':
        throw new DeviceFlowError('expired_token', `the code ${codes.userCode} expired before anyone approved it (expired_token); run the device again for a new one`);
      default:
        throw new DeviceFlowError(error ?? 'invalid_response', `token request refused: ${describeError(body, response.status)}`);
    }
  }
}

/** The text of a tool result's text parts, joined. */
export function resultText(result: CallToolResult): string {
  return result.content.map((part) => (part.type === 'text' ? part.text : '')).join('');
}

/** Lists the MCP server's tools and its notes, with the token in an Authorization header. */
async function callNotes(serverUrl: string, accessToken: string, doFetch: typeof fetch): Promise<{ tools: string[]; notes: CallToolResult }> {
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), {
    requestInit: { headers: { authorization: `Bearer ${accessToken}` } },
    fetch: doFetch,
  });
  const client = new Client({ name: 'castellan-example-device', version: '1.0.0' });
  await client.connect(transport);
  try {
    const tools = (await client.listTools()).tools.map((tool) => tool.name);
    const notes = CallToolResultSchema.parse(await client.callTool({ name: 'list_notes', arguments: {} }));
    return { tools, notes };
  } finally {
    await client.close().catch(() => {});
  }
}

/** The whole device: discover, show the code, poll, call the MCP server. Throws DeviceFlowError when the flow ends without tokens. */
export async function runDevice(options: DeviceOptions): Promise<DeviceResult> {
  const doFetch = options.fetch ?? fetch;
  const print = options.print ?? ((text: string) => console.log(text));
  const sleep = options.sleep ?? abortableSleep(options.signal);
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const clientId = options.clientId ?? 'demo-agent';
  const scope = options.scope ?? 'notes:read';
  const qr = options.qr ?? (process.stdout.isTTY ? 'terminal' : 'utf8');

  const endpoints = await discover(options, doFetch, timeoutMs);
  const codes = await requestCodes(endpoints.deviceAuthorization, options, clientId, scope, doFetch, timeoutMs);
  const info: UserCodeInfo = {
    userCode: codes.userCode,
    verificationUri: codes.verificationUri,
    verificationUriComplete: codes.verificationUriComplete,
    expiresIn: codes.expiresIn,
    interval: codes.interval,
  };
  await showCode(info, print, qr);

  // The person acts while the device polls; if whatever stands for them fails, stop polling.
  let userFailure: Error | undefined;
  if (options.onUserCode) {
    const onUserCode = options.onUserCode;
    Promise.resolve()
      .then(() => onUserCode(info))
      .catch((error: unknown) => { userFailure = error instanceof Error ? error : new Error(String(error)); });
  }

  const { tokens, polls } = await pollForTokens(endpoints.token, codes, {
    clientId, scope, resource: options.serverUrl, doFetch, sleep, print, timeoutMs,
    signal: options.signal, userFailure: () => userFailure,
  });
  print(`Signed in: scopes ${tokens.scope}${tokens.expiresIn ? `, token valid ${tokens.expiresIn} s` : ''}.`);

  const { tools, notes } = await callNotes(options.serverUrl, tokens.accessToken, doFetch);
  print(`MCP server ${options.serverUrl} offers: ${tools.join(', ')}`);
  print(`list_notes${notes.isError ? ' (error)' : ''}:\n${resultText(notes)}`);
  return { tokens, tools, notes, polls };
}
