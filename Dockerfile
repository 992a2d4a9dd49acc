# Castellan's container image: Node 24 LTS, production dependencies only.
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
# The image has Node 24 already: skip the pinned `node` dev dependency and its install script.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY src ./src
ENV NODE_ENV=production HOST=0.0.0.0 PORT=4000
EXPOSE 4000
USER node
CMD ["node", "src/main.ts"]
