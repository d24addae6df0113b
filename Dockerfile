# latchkey server image: docker-compose.yml builds it.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY proto proto
COPY src src
COPY client client
# The last build step (npm run build): the server package depends on @latchkey/client.
COPY test/support/package-server.ts test/support/package-server.ts
RUN npm ci --no-audit --no-fund && npm prune --omit=dev
ENV LATCHKEY_LISTEN=0.0.0.0:50051
EXPOSE 50051
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve"]
