#!/usr/bin/env bash
# The e2e: puts the workspace's `muster` binary (the one `cargo test
# --workspace` builds anyway) and the shared libraries it links into a
# FROM-scratch image tagged muster:e2e (no registry, no base image), then
# runs the operator's StatefulSet pods as containers (e2e/tests/statefulset.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

nice -n 19 cargo build --locked -p muster
binary="${CARGO_TARGET_DIR:-target}/debug/muster"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/usr/local/bin"
cp "$binary" "$context/rootfs/usr/local/bin/muster"
# The dynamic loader and libraries, at the paths the binary expects.
for library in $(ldd "$binary" | grep -o '/[^ )]*'); do
  mkdir -p "$context/rootfs$(dirname "$library")"
  cp -L "$library" "$context/rootfs$library"
done
cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/muster"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build --quiet --tag muster:e2e "$context" >/dev/null
MUSTER_E2E_IMAGE=muster:e2e nice -n 19 cargo test --locked -p muster-e2e -- --ignored --test-threads 1
