# syntax=docker/dockerfile:1
# Build stage: a release binary, with dependencies cached in their own layer.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
# The stub build left a newer fingerprint; touch the real sources so they are rebuilt.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

# Runtime stage: the binary, its default configuration, CA roots for TLS to partners.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/qrhub --create-home qrhub
COPY --from=build /src/target/release/qrhub /usr/local/bin/qrhub
COPY config/default.toml /etc/qrhub/qrhub.toml
USER qrhub
WORKDIR /var/lib/qrhub
ENV QRHUB_CONFIG=/etc/qrhub/qrhub.toml \
    QRHUB__SERVER__LISTEN=0.0.0.0:8080 \
    QRHUB__DATABASE__URL=sqlite:///var/lib/qrhub/qrhub.db \
    QRHUB__LOG__FORMAT=json
VOLUME ["/var/lib/qrhub"]
EXPOSE 8080
ENTRYPOINT ["qrhub"]
CMD ["serve"]
