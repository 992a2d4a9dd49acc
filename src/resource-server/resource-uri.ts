import { z } from 'zod';

/**
 * Checks a canonical resource URI: absolute http(s), no fragment (RFC 8707 §2), no userinfo
 * and, in this kit, no query, so the RFC 9728 §3.1 well-known path follows from the path alone.
 * The string itself is what tokens' `aud` and the metadata's `resource` must equal: it is
 * compared as given, never normalised.
 */
export function canonicalResourceUrl(resource: string): URL {
  let url: URL;
  try {
    url = new URL(resource);
  } catch {
    throw new TypeError(`resource ${JSON.stringify(resource)} is not an absolute URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`resource ${resource} must be http(s)`);
  if (url.hash !== '' || resource.includes('#')) throw new TypeError(`resource ${resource} must not have a fragment (RFC 8707 §2)`);
  if (url.search !== '' || resource.includes('?')) throw new TypeError(`resource ${resource} must not have a query`);
  if (url.username !== '' || url.password !== '') throw new TypeError(`resource ${resource} must not carry credentials`);
  return url;
}

export const resourceSchema = z.string().superRefine((value, ctx) => {
  try {
    canonicalResourceUrl(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});
