# ingressd image: glibc-based Node LTS (better-sqlite3 has no prebuilt binary for musl and is
# compiled here), built with the same commands CI runs, run as a non-root user.

FROM node:22-bookworm-slim AS build
WORKDIR /app
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production INGRESSD_DB=/data/ingressd.db
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/migrations ./migrations
COPY --from=build /app/openapi ./openapi
COPY --from=build /app/examples ./examples
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 8080 8443 8001
VOLUME ["/data"]
# What `npm start` runs once `npm run build` has produced dist/.
CMD ["node", "bin/ingressd.js", "serve"]
