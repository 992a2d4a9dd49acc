import { once } from 'node:events';
import Koa from 'koa';

/*
 * The framework ceiling: a bare Koa app answering every request with a small JSON body,
 * and reading a form body on POST (what a token endpoint must do at least).
 */

const port = Number(process.env.PORT ?? '0');
const app = new Koa();
app.use(async (ctx) => {
  if (ctx.method === 'POST') {
    let length = 0;
    for await (const chunk of ctx.req) length += (chunk as Buffer).length;
    ctx.body = { ok: true, length };
    return;
  }
  ctx.body = { ok: true };
});
const server = app.listen(port, '127.0.0.1');
await once(server, 'listening');
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
process.stdout.write('bare koa ready\n');
