import { envString } from '../shared/main.ts';
import { DeviceFlowError, runDevice, type QrStyle } from './device.ts';

/*
 * npm run example:device      sign this "device" in through a person on another screen
 *                             (RFC 8628), then list the notes on the MCP server
 */

const QR_STYLES: readonly QrStyle[] = ['terminal', 'utf8', 'none'];

const issuer = envString('CASTELLAN_ISSUER', 'http://localhost:4000/t/demo');
const serverUrl = envString('MCP_SERVER_URL', 'http://localhost:3001/mcp');
const clientId = envString('DEVICE_CLIENT_ID', 'demo-agent');
const scope = envString('DEVICE_SCOPE', 'notes:read');
const qr = envString('DEVICE_QR', process.stdout.isTTY ? 'terminal' : 'utf8') as QrStyle;

async function main(): Promise<void> {
  if (!QR_STYLES.includes(qr)) throw new Error(`DEVICE_QR must be one of ${QR_STYLES.join(', ')}, not ${JSON.stringify(qr)}`);
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  console.log(`device: client ${clientId}, scope ${scope}, for ${serverUrl}, signing in at ${issuer}\n`);
  await runDevice({ issuer, serverUrl, clientId, scope, qr, signal: stop.signal });
}

main().catch((error: unknown) => {
  console.error(error instanceof DeviceFlowError ? error.message : error instanceof Error ? error.message : error);
  process.exit(1);
});
