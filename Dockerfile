# syntax=docker/dockerfile:1
# Multi-stage build: compile lty, ship it on a slim Debian runtime as a
# non-root user.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p lty-server \
 && install -m 0755 target/release/lty /usr/local/bin/lty

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates espeak-ng \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/lty --create-home lty
COPY --from=build /usr/local/bin/lty /usr/local/bin/lty
USER lty
WORKDIR /var/lib/lty
ENV LTY_BIND=0.0.0.0:8000 \
    LTY_DATA_DIR=/var/lib/lty/data \
    LTY_LOG__FORMAT=json
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/lty"]
CMD ["serve"]
