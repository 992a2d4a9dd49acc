import { setTimeout as delay } from 'node:timers/promises';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DeviceFlowError, resultText, runDevice, type DeviceOptions, type DeviceResult, type UserCodeInfo } from '../../mcp-examples/device/device.ts';
import { startNotesServer } from '../../mcp-examples/notes-server/notes-server.ts';
import type { RunningHttpServer } from '../../mcp-examples/shared/http.ts';
import { DEMO_TENANT_SETTINGS } from '../../src/demo/demo-tenant.ts';
import { startTestCastellan, type TestCastellan } from '../support/castellan.ts';
import { newBrowser, type Browser } from '../support/oauth.ts';
import { freePort } from '../support/running-server.ts';

/*
 * The device example (mcp-examples/device) against a real Castellan on FerretDB + Redis and
 * the notes MCP server on a free port: the device asks for a code, a person (a scripted
 * browser) opens verification_uri_complete, confirms it is their device, signs in and allows,
 * or says no; the device polls through it and calls the notes server with its token. The
 * device's sleep is injected: it records every wait the device asks for and waits for real
 * only where Castellan's own polling check (RFC 8628 §3.5, on the wall clock) needs it.
 */

/** A promise with its resolve, to line up the device and the person. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

const decode = (value: string) => value.replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

/** A form of the page (the one with that id, else the first): its action and hidden inputs. */
function formOf(html: string, pageUrl: string, id?: string): { action: string; fields: Record<string, string> } {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)];
  const form = id ? forms.find((f) => f[1]?.includes(`id="${id}"`)) : forms[0];
  if (!form) throw new Error(`no form${id ? ` ${id}` : ''} on ${pageUrl}: ${html.slice(0, 300)}`);
  const action = /action="([^"]*)"/.exec(form[1] ?? '')?.[1] ?? '';
  const fields: Record<string, string> = {};
  for (const input of (form[2] ?? '').matchAll(/<input\b[^>]*>/g)) {
    const name = /name="([^"]*)"/.exec(input[0])?.[1];
    const value = /value="([^"]*)"/.exec(input[0])?.[1];
    if (name && /type="hidden"/.test(input[0])) fields[name] = decode(value ?? '');
  }
  return { action: new URL(decode(action), pageUrl).href, fields };
}

function locationOf(response: Response, base: string): string {
  const location = response.headers.get('location');
  if (!location) throw new Error(`expected a redirect, got ${response.status}`);
  return new URL(location, base).href;
}

/**
 * The person with the device in front of them: opens verification_uri_complete (oidc-provider
 * answers with a self-submitting form, which a browser without script submits by hand), sees
 * the confirmation page, then either says no, or says yes, signs in and allows.
 * Returns the last page's text.
 */
async function actOnCode(
  browser: Browser, info: UserCodeInfo, decision: 'approve' | 'deny', login: string, password: string,
  seen: { confirmation?: string } = {},
): Promise<string> {
  const url = info.verificationUriComplete ?? '';
  const opened = await browser.get(url);
  expect(opened.status).toBe(200);
  const entry = formOf(await opened.text(), url);
  expect(entry.fields.user_code).toBe(info.userCode);

  const confirmation = await browser.postForm(entry.action, entry.fields);
  const confirmationHtml = await confirmation.text();
  expect(confirmation.status, confirmationHtml.slice(0, 300)).toBe(200);
  seen.confirmation = confirmationHtml;
  const confirm = formOf(confirmationHtml, entry.action, 'op.deviceConfirmForm');
  if (decision === 'deny') {
    const denied = await browser.postForm(confirm.action, { ...confirm.fields, abort: 'yes' });
    return denied.text();
  }

  let response = await browser.postForm(confirm.action, confirm.fields);
  let at = confirm.action;
  for (let step = 0; step < 16; step += 1) {
    if (response.status >= 300 && response.status < 400) {
      at = locationOf(response, at);
      response = await browser.get(at);
      continue;
    }
    const html = await response.text();
    if (response.status !== 200) throw new Error(`unexpected ${response.status} at ${at}: ${html.slice(0, 300)}`);
    if (html.includes('Device connected')) return html;
    if (html.includes('name="password"')) {
      at = formOf(html, at).action;
      response = await browser.postForm(at, { login, password });
    } else if (html.includes('Allow access?')) {
      at = formOf(html, at).action;
      response = await browser.postForm(at, {});
    } else {
      throw new Error(`unexpected page at ${at}: ${html.slice(0, 300)}`);
    }
  }
  throw new Error('the approval did not finish in 16 steps');
}

describe('the device example (RFC 8628) against Castellan (FerretDB + Redis)', () => {
  let castellan: TestCastellan;
  let notes: RunningHttpServer;
  const serverErrors: unknown[] = [];
  /** The interval the test tenant tells devices to keep (seconds). */
  const INTERVAL = 1;

  /** Runs the device with the test's defaults, capturing what it prints and the waits it asks for. */
  function device(options: Partial<DeviceOptions>): { printed: string[]; sleeps: number[]; infos: UserCodeInfo[]; run: Promise<DeviceResult> } {
    const printed: string[] = [];
    const sleeps: number[] = [];
    const infos: UserCodeInfo[] = [];
    const { onUserCode } = options;
    const run = runDevice({
      issuer: castellan.issuer,
      serverUrl: notes.url,
      qr: 'utf8',
      print: (text) => printed.push(text),
      sleep: async (ms) => { sleeps.push(ms); },
      ...options,
      onUserCode: async (info) => {
        infos.push(info);
        await onUserCode?.(info);
      },
    });
    return { printed, sleeps, infos, run };
  }

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'device_cli');
    const notesPort = await freePort();
    const notesUrl = `http://localhost:${notesPort}/mcp`;
    // The demo tenant with the notes resource on the port bound here and a 1 s polling interval.
    await castellan.running.storage.tenants.update('demo', {
      settings: {
        ...DEMO_TENANT_SETTINGS,
        resources: [{ uri: notesUrl, scopes: ['notes:read', 'notes:write'], accessTokenFormat: 'jwt' }],
        deviceFlow: { enabled: true, interval: INTERVAL },
      },
    });
    castellan.running.tenants.invalidate('demo');
    notes = await startNotesServer({ port: notesPort, issuer: castellan.issuer, resource: notesUrl, onError: (error) => serverErrors.push(error) });
  });

  afterEach(() => {
    expect(serverErrors.splice(0)).toEqual([]);
  });

  afterAll(async () => {
    await notes?.close();
    await castellan?.stop();
  });

  it('signs the device in through a person who approves on another screen, and calls the notes server with the token', async () => {
    const fetched: string[] = [];
    const recording: typeof fetch = (input, init) => {
      fetched.push(`${init?.method ?? 'GET'} ${input instanceof Request ? input.url : String(input)}`);
      return fetch(input, init);
    };
    // The person starts only once the device has polled and heard authorization_pending.
    const firstPollAnswered = deferred();
    const approved = deferred();
    const seen: { confirmation?: string } = {};
    let lastPage = '';
    const sleeps: number[] = [];
    const { printed, infos, run } = device({
      fetch: recording,
      async sleep(ms) {
        sleeps.push(ms);
        if (sleeps.length === 1) return;
        firstPollAnswered.resolve();
        await approved.promise;
        // Castellan checks the interval on its own clock: this wait is real.
        await delay(ms);
      },
      async onUserCode(info) {
        await firstPollAnswered.promise;
        lastPage = await actOnCode(newBrowser(), info, 'approve', 'demo', castellan.userPassword, seen);
        approved.resolve();
      },
    });
    const result = await run;

    // What the device showed: the URL, the code, a QR code of the complete URI.
    const [info] = infos;
    expect(info?.userCode).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    expect(info?.verificationUri).toBe(`${castellan.issuer}/device`);
    expect(info?.verificationUriComplete).toBe(`${castellan.issuer}/device?user_code=${info?.userCode}`);
    expect(info?.interval).toBe(INTERVAL);
    const shown = printed.join('\n');
    expect(shown).toContain(info?.verificationUri);
    expect(shown).toContain(info?.userCode);
    expect(shown).toMatch(/[█▀▄]{7}/);

    // The person saw which client asks for what, and the code, before anything was granted.
    expect(seen.confirmation).toContain('Is this the device in front of you?');
    expect(seen.confirmation).toContain('Demo agent');
    expect(seen.confirmation).toContain(info?.userCode);
    expect(seen.confirmation).toContain('notes:read');
    expect(lastPage).toContain('Device connected');

    // Discovery by RFC 8414 path insertion, the device authorization endpoint from it, one
    // poll that was pending and one that got the tokens, then the MCP server.
    expect(fetched.slice(0, 4)).toEqual([
      `GET ${castellan.baseUrl}/.well-known/oauth-authorization-server/t/demo`,
      `POST ${castellan.issuer}/device/auth`,
      `POST ${castellan.issuer}/token`,
      `POST ${castellan.issuer}/token`,
    ]);
    expect(fetched.slice(4).every((line) => line.endsWith(notes.url))).toBe(true);
    expect(result.polls).toBe(2);
    // Never tighter than the interval.
    expect(sleeps).toEqual([INTERVAL * 1000, INTERVAL * 1000]);

    // A JWT for the notes server, for the demo user, through demo-agent.
    expect(result.tokens.scope).toBe('notes:read');
    const claims = decodeJwt(result.tokens.accessToken);
    expect(claims).toMatchObject({ aud: notes.url, client_id: 'demo-agent', scope: 'notes:read', iss: castellan.issuer });
    expect(claims.sub).toBeTruthy();

    expect(result.tools).toEqual(['list_notes', 'read_note', 'add_note']);
    expect(result.notes.isError).toBeFalsy();
    expect(JSON.parse(resultText(result.notes))).toEqual([]);
    expect(shown).toContain('list_notes:\n[]');
  });

  it('reports access_denied when the person says it is not their device', async () => {
    const denied = deferred();
    let lastPage = '';
    const { printed, sleeps, run } = device({
      async sleep(ms) {
        sleeps.push(ms);
        await denied.promise;
      },
      async onUserCode(info) {
        lastPage = await actOnCode(newBrowser(), info, 'deny', 'demo', castellan.userPassword);
        denied.resolve();
      },
    });
    const error = await run.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(DeviceFlowError);
    expect((error as DeviceFlowError).error).toBe('access_denied');
    expect((error as DeviceFlowError).message).toContain('denied (access_denied)');
    expect(lastPage).toContain('You cancelled the sign-in for that device.');
    expect(sleeps).toEqual([INTERVAL * 1000]);
    expect(printed.join('\n')).not.toContain('Signed in');
  });

  it('slows down by 5 s when Castellan answers slow_down, and keeps the longer interval', async () => {
    const stop = new AbortController();
    const { printed, sleeps, run } = device({
      signal: stop.signal,
      // Returns at once: the second poll comes too early for Castellan. The third wait ends the run.
      async sleep(ms) {
        sleeps.push(ms);
        if (sleeps.length === 3) stop.abort();
      },
    });
    const error = await run.then(() => undefined, (e: unknown) => e);
    expect((error as DeviceFlowError).error).toBe('aborted');
    expect(sleeps).toEqual([INTERVAL * 1000, INTERVAL * 1000, (INTERVAL + 5) * 1000]);
    expect(printed.join('\n')).toContain(`polling every ${INTERVAL + 5} s`);
  });

  it('stops once the code has outlived expires_in, whatever it was told to wait, with a clear message', async () => {
    const { sleeps, infos, run } = device({});
    const error = await run.then(() => undefined, (e: unknown) => e);
    expect((error as DeviceFlowError).error).toBe('expired_token');
    expect((error as DeviceFlowError).message).toContain('expired before anyone approved it');
    const expiresIn = infos[0]?.expiresIn ?? 0;
    expect(expiresIn).toBe(600);
    // Each too-early poll (sleep returns at once here) grew the interval by 5 s; the waits add
    // up past the code's lifetime and the device stops without another request.
    for (const [i, ms] of sleeps.entries()) if (i >= 2) expect(ms).toBe((sleeps[i - 1] ?? 0) + 5000);
    expect(sleeps.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(expiresIn * 1000);
  });
});
