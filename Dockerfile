# syntax=docker/dockerfile:1
# The spacedigest image: `spacedigest serve` on port 8080 with SQLite and the outbox on
# the /data volume. Build: docker build -t spacedigest .   (see DEPLOY.md)

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
# diesel's PostgreSQL backend links libpq (SQLite is bundled into the binary).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the binary is built from: migrations, templates and static files are compiled in.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
# The registry and target directory live in cache mounts, so a rebuild after a source
# change recompiles only spacedigest itself; the binary is copied out of the mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin spacedigest \
 && install -m 0755 target/release/spacedigest /usr/local/bin/spacedigest

FROM debian:bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="spacedigest" \
      org.opencontainers.image.description="Self-hosted newsletter signup with double opt-in and a daily digest mailer" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
# libpq5 for PostgreSQL. SMTP and feed TLS use rustls with compiled-in webpki roots and
# need no system store; ca-certificates is for libpq's TLS (sslmode=verify-full with
# sslrootcert=/etc/ssl/certs/ca-certificates.crt). sqlite3 takes online backups as the
# same user (`docker exec … sqlite3 … .backup`, DEPLOY.md). Versions are not pinned so
# that a rebuild picks up Debian's security updates; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates sqlite3 \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --user-group --uid 10001 --home-dir /data --shell /usr/sbin/nologin spacedigest \
 && mkdir -p /data/outbox /data/backups \
 && chown -R spacedigest:spacedigest /data
COPY --from=builder /usr/local/bin/spacedigest /usr/local/bin/spacedigest

# Numeric, so that platforms can check "not root" without reading /etc/passwd.
USER 10001:10001
WORKDIR /data
ENV SPACEDIGEST_DATABASE_URL=sqlite:///data/spacedigest.db \
    SPACEDIGEST_SMTP_URL=file:///data/outbox \
    SPACEDIGEST_LISTEN=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
# No curl in the image: the binary asks its own /health_check (port from SPACEDIGEST_LISTEN).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/spacedigest", "healthcheck"]
# `serve` stops gracefully on SIGTERM (Docker's default stop signal).
ENTRYPOINT ["/usr/local/bin/spacedigest"]
CMD ["serve"]
