# syntax=docker/dockerfile:1
# sealflow container: multi-stage build, native modules (better-sqlite3, the DTLS addon) compiled
# in the build stage against the same Node.js major as the runtime, distroless non-root runtime.
#
#   docker build -t sealflow .
#   docker run --read-only -v sealflow-data:/data \
#     -e SEALFLOW_SPOOL_KEK_FILE=/run/secrets/sealflow_kek \
#     -e SEALFLOW_FUSION_NETOSECRET_FILE=/run/secrets/netosecret \
#     -v ./sealflow.yaml:/etc/sealflow/sealflow.yaml:ro \
#     -p 4739:4739/udp -p 2055:2055/udp -p 6343:6343/udp -p 4740:4740/tcp -p 4740:4740/udp \
#     sealflow run --config /etc/sealflow/sealflow.yaml
#
# Node 20 is past end of life; the package still supports it, the image ships the current LTS.
ARG NODE_MAJOR=24

FROM node:${NODE_MAJOR}-bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY src/ingest/dtls/native ./src/ingest/dtls/native
# --ignore-scripts: `prepare` needs the sources; build native modules explicitly instead.
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
RUN npm run build && npm run build:native && npm prune --omit=dev

FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/src/ingest/dtls/native/build/Release/sealflow_dtls.node ./src/ingest/dtls/native/build/Release/sealflow_dtls.node
# One writable volume: the encrypted spool (and, in dev mode only, generated dev keys).
VOLUME ["/data"]
ENV SEALFLOW_DATA_DIR=/data NODE_ENV=production
# 4739/udp IPFIX, 2055/udp NetFlow v5/v9, 6343/udp sFlow, 4740/tcp IPFIX over TLS,
# 4740/udp IPFIX over DTLS, 9180/tcp admin (/healthz, /metrics; bind it beyond loopback only with a token).
EXPOSE 4739/udp 2055/udp 6343/udp 4740/tcp 4740/udp 9180/tcp
USER nonroot
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/nodejs/bin/node", "/app/bin/sealflow.js", "health"]
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/sealflow.js"]
CMD ["run"]
