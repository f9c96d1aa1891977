# syntax=docker/dockerfile:1
# sealflow container (docs/deployment.md, "Container"): native modules (better-sqlite3 and
# sealflow's addons) compiled in the build stage against the same Node.js major as the runtime;
# every runtime file staged in one folder that the distroless, non-root runtime copies whole.
#
#   docker build -t sealflow .
#   docker run --read-only --ulimit core=0 -v sealflow-data:/data \
#     -v ./sealflow.yaml:/etc/sealflow/sealflow.yaml:ro \
#     -e SEALFLOW_SPOOL_KEK_FILE=/run/secrets/sealflow_kek \
#     -e SEALFLOW_FUSION_NETOSECRET_FILE=/run/secrets/netosecret \
#     -p 4739:4739/udp -p 2055:2055/udp -p 6343:6343/udp -p 4740:4740/tcp -p 4740:4740/udp \
#     sealflow
#
# The configuration is required: without /etc/sealflow/sealflow.yaml the probe exits with
# status 78 and says so (the development setup of `npm start` listens on loopback only, which
# no -p mapping reaches). Listeners in the file bind 0.0.0.0 (or ::) to be reachable.
#
# Node 20 is past end of life; the package still supports it, the image ships the current LTS.
ARG NODE_MAJOR=24

FROM node:${NODE_MAJOR}-bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` needs the sources; better-sqlite3 is compiled here, the rest below.
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json README.md SECURITY.md ./
COPY bin ./bin
COPY scripts ./scripts
COPY docs ./docs
COPY src ./src
# One folder with everything the probe loads: compiled code, every native addon (a missing one
# fails the build), production modules only.
RUN npm run build && npm run build:native && node scripts/stage-runtime.mjs /runtime && mkdir -m 0700 /data

FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot
COPY --from=build /runtime /app
# One writable volume, the encrypted spool, owned by the runtime user: a new volume takes the
# image's ownership of its mount point (a host directory mounted there must be owned by 65532).
COPY --from=build --chown=65532:65532 /data /data
WORKDIR /app
VOLUME ["/data"]
ENV SEALFLOW_DATA_DIR=/data SEALFLOW_CONFIG=/etc/sealflow/sealflow.yaml NODE_ENV=production
# 4739/udp IPFIX, 2055/udp NetFlow v5/v9, 6343/udp sFlow, 4740/tcp IPFIX over TLS,
# 4740/udp IPFIX over DTLS, 9180/tcp admin (/healthz, /metrics; bind it beyond loopback only with a token).
EXPOSE 4739/udp 2055/udp 6343/udp 4740/tcp 4740/udp 9180/tcp
# The distroless image's nonroot user, numeric so that runAsNonRoot (Kubernetes) can verify it.
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/nodejs/bin/node", "/app/bin/sealflow.js", "health"]
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/sealflow.js"]
CMD ["run"]
