# syntax=docker/dockerfile:1
# Castellan's container image: Node 24 LTS, production dependencies only, runs as `node`.
# Sources run directly (Node 24 strips TypeScript types); there is no build step.
#
#   docker build -t castellan .                     # the server (default target)
#   docker build -t castellan-examples --target examples .   # + the example MCP servers

FROM node:24-bookworm-slim AS base
ENV NODE_ENV=production
WORKDIR /app

# --- production dependencies only -------------------------------------------------------
FROM base AS deps
COPY package.json package-lock.json ./
# The image has Node 24 already: --ignore-scripts skips the pinned `node` dev dependency's
# install script (dev dependencies are omitted anyway); argon2 ships prebuilt binaries.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# --- the example MCP servers (docker-compose.yml runs the notes server from this) ---------
FROM base AS examples
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY mcp-examples ./mcp-examples
ENV HOST=0.0.0.0 PORT=3001
EXPOSE 3001
USER node
CMD ["node", "mcp-examples/notes-server/main.ts"]

# --- the server ------------------------------------------------------------------------
FROM base AS runtime
# Files owned by root and not writable by `node`: the process cannot change its own code.
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
# `castellan <verb>` in the container (docker compose exec castellan castellan init); the
# image's Node 24 runs the TypeScript itself, the launcher falls back to it.
COPY bin ./bin
RUN ln -s /app/bin/castellan.mjs /usr/local/bin/castellan
ENV HOST=0.0.0.0 PORT=4000
EXPOSE 4000
USER node
# Liveness only (no store check: a MongoDB outage must not get every node restarted).
# Slim images have no curl: Node's own fetch.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains requests in flight (CASTELLAN_SHUTDOWN_DRAIN_SECONDS, 10 s), then exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "src/main.ts"]
