# syntax=docker/dockerfile:1
# The fanwatch service image: the `fanwatch` command for the services around the functions (the
# MQTT connector, the InfluxDB writer, the fleet simulator). The functions have their own images,
# built by faas-cli from templates/node22-ts. Build: docker buildx build --platform
# linux/amd64,linux/arm64 -t ghcr.io/fanwatch/fanwatch:0.1.0 --push .
FROM --platform=${BUILDPLATFORM:-linux/amd64} node:22-alpine AS build
ENV NPM_CONFIG_LOGLEVEL=warn NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` compiles, which needs the sources copied below.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
COPY . .
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts

FROM --platform=${TARGETPLATFORM:-linux/amd64} node:22-alpine
WORKDIR /app
COPY --from=build /src/package.json /src/stack.yml ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/model/artifact ./model/artifact
COPY --from=build /src/page/ui ./page/ui
# The node image's unprivileged user, by number so Kubernetes can verify runAsNonRoot. Nothing is
# written at run time: the image runs with a read-only root filesystem.
USER 1000:1000
# The connector stays under 100 MB resident with a capped young generation (docs/pipeline.md).
ENV NODE_ENV=production NODE_OPTIONS=--max-semi-space-size=4
ENTRYPOINT ["node", "bin/fanwatch.js"]
CMD ["connector"]
