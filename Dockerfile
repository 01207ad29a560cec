# openclaw-mcp as a container: a statically linked binary on distroless, non-root, read-only
# root file system friendly (it writes only to the /data volume), with a HEALTHCHECK that needs
# no shell. Build: docker build -t openclaw-mcp .   Run: see docker-compose.yml and
# docs/installation.md. CI builds the same static binary with scripts/static-build.sh.
# The published image (ghcr.io/openclaw-mcp/openclaw-mcp-rs, linux/amd64 and linux/arm64) is not
# built from this file but from the release's musl binaries (scripts/package.sh);
# packaging/Dockerfile.prebuilt does the same with Docker.

FROM rust:1.95-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
# crt-static links glibc statically; the `static` feature resolves host names with hickory
# instead of getaddrinfo (which a static glibc cannot use without NSS libraries).
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN target="$(uname -m)-unknown-linux-gnu" \
 && cargo build --release --locked --target "$target" --features static --bin openclaw-mcp \
 && cp "target/$target/release/openclaw-mcp" /openclaw-mcp \
 && mkdir -p /data

FROM gcr.io/distroless/static-debian12:nonroot
# The MCP Registry checks the first label against server.json's name; the version is Cargo.toml's
# (scripts/packaging.py check-versions keeps them in step).
LABEL io.modelcontextprotocol.server.name="io.github.openclaw-mcp/openclaw-mcp-rs" \
      org.opencontainers.image.title="openclaw-mcp" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.source="https://github.com/openclaw-mcp/openclaw-mcp-rs" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /openclaw-mcp /usr/local/bin/openclaw-mcp
COPY --from=build --chown=65532:65532 /data /data
ENV OPENCLAW_URL=http://openclaw:18789 \
    HOST=0.0.0.0 \
    PORT=3000 \
    OPENCLAW_MCP_DATA_DIR=/data
USER 65532:65532
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/openclaw-mcp", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/openclaw-mcp"]
CMD ["--transport", "http"]
