# syntax=docker/dockerfile:1
#
# agentcore-operator container image.
#
# Its runtime stage is the image hack/build-image.sh builds with buildah (no registry, no Docker
# engine), which is what the tests run on a real node; this file is for users with a registry and
# BuildKit (cache mounts need it), e.g.
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

# The registry, git checkouts and target/ live in BuildKit cache mounts, so rebuilds reuse compiled
# dependencies. A cache mount is not part of the layer, hence the copy out of target/ in the same RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p agentcore-operator --bin agentcore-operator \
    && hack/image-rootfs.sh target/release/agentcore-operator /rootfs

# --- runtime ---------------------------------------------------------------------------------------
# hack/build-image.sh builds exactly this stage, with the root filesystem from the same
# hack/image-rootfs.sh (the binary, the libraries ldd names, the CA bundle, a passwd naming the
# numeric user: no shell, no package manager). It replaces only the COPY source below.
FROM scratch

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="agentcore-operator" \
      org.opencontainers.image.description="Kubernetes operator for Amazon Bedrock AgentCore batch evaluations" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

COPY --from=builder /rootfs/ /

# Numeric, so the kubelet can verify runAsNonRoot without resolving a user name.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/agentcore-operator"]
CMD ["run"]
