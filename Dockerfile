# syntax=docker/dockerfile:1
# Build stage: a release binary, with dependencies cached in their own layer.
FROM rust:1.95-slim-bookworm AS build
# make builds jemalloc, the binary's allocator, from the sources bundled in its crate.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The product alone: without the `tools` feature (the partner simulator, the load generator,
# the chaos run), none of which belongs in a production image. The compose demo builds its
# partner simulator's image with FEATURES="--features tools".
ARG FEATURES=--no-default-features
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked $FEATURES \
    && rm -rf src
COPY build.rs ./
COPY src ./src
COPY migrations ./migrations
# The stub build left a newer fingerprint; touch the real sources so they are rebuilt.
RUN touch build.rs src/main.rs src/lib.rs && cargo build --release --locked $FEATURES

# Runtime stage: the binary, its default configuration, CA roots for TLS to partners.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/qrhub --create-home qrhub
COPY --from=build /src/target/release/qrhub /usr/local/bin/qrhub
COPY config/ /etc/qrhub/
USER qrhub
WORKDIR /var/lib/qrhub
# The image serves the configuration of your own in the volume; the demo file is only the
# template `qrhub init-config` starts from (its published passwords never serve on 0.0.0.0):
#   docker run --rm -v qrhub:/var/lib/qrhub qrhub init-config
ENV QRHUB_CONFIG=/var/lib/qrhub/qrhub.toml \
    QRHUB_CONFIG_TEMPLATE=/etc/qrhub/default.toml \
    QRHUB__SERVER__LISTEN=0.0.0.0:8080 \
    QRHUB__DATABASE__URL=sqlite:///var/lib/qrhub/qrhub.db \
    QRHUB__LOG__FORMAT=json
VOLUME ["/var/lib/qrhub"]
EXPOSE 8080
# Ready means the database answers; the probe is the binary itself (no curl in the image).
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 \
    CMD ["qrhub", "probe", "http://127.0.0.1:8080/health/ready"]
ENTRYPOINT ["qrhub"]
CMD ["serve"]
