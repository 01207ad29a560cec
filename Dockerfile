# Placeholder until the production issue: a multi-stage build of the static binary on a minimal,
# non-root base with a HEALTHCHECK is planned there. This builds and runs the bridge as is.
FROM rust:1.95-slim AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
COPY --from=build /src/target/release/openclaw-mcp /usr/local/bin/openclaw-mcp
USER nobody
ENTRYPOINT ["/usr/local/bin/openclaw-mcp"]
