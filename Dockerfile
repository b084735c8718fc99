# syntax=docker/dockerfile:1
#
# The relay as a small image: `docker build -t spycloud-relay .`, then
#   docker run --rm -p 9090:9090 spycloud-relay            (serve, for SecureX)
#   docker run --rm -p 9090:9090 spycloud-relay demo       (the offline demo)
#   docker inspect --format '{{.State.Health.Status}}' <container>   (the HEALTHCHECK below)
# Configuration is by environment variable (RELAY_*, SPYCLOUD_*), see the README.

# --- build ---------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# Dependencies first, in their own layer: rebuilt only when the manifest or lock file changes.
COPY Cargo.toml Cargo.lock ./
# The manifest names a bench target: a placeholder stands in for it (benches are not built).
RUN mkdir src benches \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > benches/relay.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The crate itself. `demo/` is compiled in (the sample dataset and the demo key).
COPY src ./src
COPY demo ./demo
# COPY keeps the files' own times, which may be older than the placeholder build above.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin spycloud-relay \
    && install -D -m 0755 target/release/spycloud-relay /out/spycloud-relay

# --- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid relay --no-create-home --shell /usr/sbin/nologin relay
COPY --from=builder /out/spycloud-relay /usr/local/bin/spycloud-relay
USER relay:relay
ENV RELAY_LISTEN=0.0.0.0:9090
EXPOSE 9090
# `GET /watchdog` over loopback by the relay binary itself: the image has no curl or shell tools
# to spare. It reads RELAY_LISTEN as `serve` does.
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/spycloud-relay", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/spycloud-relay"]
CMD ["serve"]
