# syntax=docker/dockerfile:1
#
# agentcore-operator container image.
#
# NOTE: this file has never been built: the machine it was written on has no Docker engine. It is
# checked by reading only. Build with BuildKit (cache mounts need it), e.g.
#   docker buildx build -t agentcore-operator:dev \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
# Multi-arch builds (--platform linux/amd64,linux/arm64) build natively per platform (QEMU for the
# foreign one); there is no cross-compilation here.

# --- build -----------------------------------------------------------------------------------------
# Debian 12 (bookworm) on both sides: the binary links against the glibc the runtime image ships.
FROM rust:1-bookworm AS builder
WORKDIR /src

# The whole workspace is needed: cargo resolves every member (emulator, testenv) and the lock file
# even when building one package. .dockerignore keeps target/, .git and local state out.
COPY . .

# Strip symbols in the image only; the workspace's own release profile stays untouched.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols

# The registry, git checkouts and target/ live in BuildKit cache mounts, so rebuilds reuse compiled
# dependencies. A cache mount is not part of the layer, hence the copy out of target/ in the same RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p agentcore-operator --bin agentcore-operator \
    && install -D -m 0755 target/release/agentcore-operator /out/agentcore-operator

# --- runtime ---------------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc, CA certificates and nothing else (no shell, no package manager).
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="agentcore-operator" \
      org.opencontainers.image.description="Kubernetes operator for Amazon Bedrock AgentCore batch evaluations" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder /out/agentcore-operator /agentcore-operator

# Numeric, so the kubelet can verify runAsNonRoot without resolving a user name.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/agentcore-operator"]
CMD ["run"]
