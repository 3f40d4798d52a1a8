# The operator image: `playbook-operator` built with the crate's Rust version, on
# distroless (glibc and CA certificates; no shell, no package manager) as the
# non-root user 65532, which the Helm chart's securityContext expects.
#
#   docker build -t playbook-operator:0.1.0 .
#
# Not built by CI (there is no Docker there); `make test` builds the same image with
# tests/cluster/operator-image.sh and runs it as the chart's pods (tests/helm_e2e.rs).

FROM docker.io/library/rust:1.89-bookworm AS build
WORKDIR /src
# The manifest names tests/bench as a bench target: cargo reads it even for --bin.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests/bench ./tests/bench
RUN cargo build --release --locked --bin playbook-operator

# cc, not static: the binary links glibc (Rust's default target), which bookworm and
# distroless/cc-debian12 share.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/playbook-operator /usr/local/bin/playbook-operator
# tests/cluster/operator-image.sh builds this image without Docker for the real node of
# the local cluster; tests/chart.rs keeps its user, entrypoint, port and labels in step.
LABEL org.opencontainers.image.title="playbook-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/playbook-operator"]
CMD ["run"]
