import { spawn } from 'node:child_process';

/**
 * Opens a URL in the user's browser when an opener exists (open, xdg-open, start); silently
 * does nothing when none does (a server, a container): the URL is printed anyway.
 */
export function openInBrowser(url: string): void {
  const [command, args] = process.platform === 'darwin'
    ? ['open', [url]]
    : process.platform === 'win32'
      ? ['cmd', ['/c', 'start', '""', url.replace(/&/g, '^&')]]
      : ['xdg-open', [url]];
  try {
    const child = spawn(command, args, { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no opener: the printed URL is enough
  }
}
