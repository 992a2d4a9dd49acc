import { newBrowser } from './oauth.ts';

export interface DeviceConfirmation {
  userCode: string;
  /** The confirmation page's status and HTML, as a person would see it after typing the code. */
  status: number;
  html: string;
}

/**
 * Starts a device authorization (RFC 8628 §3.1) for `clientId` and, in a fresh browser,
 * types its user code on the verification page; returns the confirmation page reached.
 */
export async function openDeviceConfirmation(
  issuer: string,
  clientId: string,
  scope: string,
  deviceHeaders: Record<string, string> = {},
): Promise<DeviceConfirmation> {
  const authorization = await fetch(`${issuer}/device/auth`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...deviceHeaders },
    body: new URLSearchParams({ client_id: clientId, scope }),
  });
  if (authorization.status !== 200) throw new Error(`device authorization answered ${authorization.status}: ${await authorization.text()}`);
  const { user_code: userCode } = (await authorization.json()) as { user_code: string };

  const browser = newBrowser();
  const entry = await (await browser.get(`${issuer}/device`)).text();
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(entry)?.[1];
  if (!xsrf) throw new Error('no xsrf token on the code entry page');
  const confirm = await browser.postForm(`${issuer}/device`, { xsrf, user_code: userCode });
  return { userCode, status: confirm.status, html: await confirm.text() };
}
