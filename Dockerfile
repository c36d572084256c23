# syntax=docker/dockerfile:1
#
# chatnode container image.
#
#   docker build -t chatnode:0.1.0 .
#
# Stages:
#   chef     - Rust toolchain plus cargo-chef (installed once, cached)
#   planner  - computes recipe.json: the dependency graph only
#   builder  - builds the dependencies from the recipe (a cached layer that
#              changes only when Cargo.toml/Cargo.lock change), then chatnode
#   runtime  - distroless glibc image with the binary and config/ only,
#              running as an unprivileged numeric user
#
# The builder (Debian 12 "bookworm") and the runtime (distroless Debian 12)
# must share a glibc; change both together.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.77
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
# Dependencies only: this layer is reused until the dependency graph changes.
RUN cargo chef cook --release --recipe-path recipe.json
# The sources. frontend/ must be present: release builds embed it.
COPY . .
RUN cargo build --release --locked --bin chatnode \
 && install -D -m 0755 target/release/chatnode /out/chatnode

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="chatnode" \
      org.opencontainers.image.description="Real-time chat server; state lives in Redis, nodes scale out behind a load balancer." \
      org.opencontainers.image.licenses="MIT"
WORKDIR /app
COPY --from=builder /out/chatnode /usr/local/bin/chatnode
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
