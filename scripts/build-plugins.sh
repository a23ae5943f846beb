#!/usr/bin/env bash
# Builds the policy plugins from source: the examples (examples/policies) and the hostile ones
# the tests use (tests/plugins), into $CARGO_TARGET_DIR/plugins/*.wasm, and prints that folder.
#
# rustup has no wasm targets here, so this uses Debian's Rust (rustc-web, 1.96, with its std
# sources) to build std for wasm32-unknown-unknown and link a component directly with
# wasm-component-ld. On a machine with rustup, `cargo build --release --target wasm32-wasip2`
# in examples/policies does the same job.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target="${CARGO_TARGET_DIR:-$HOME/.cache/porten-target}"
out="$target/plugins"
if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src ] || [ ! -x /usr/lib/llvm-22/bin/wasm-ld ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq rustc-web cargo-web rust-web-src rust-web-llvm lld-22 >/dev/null
fi
mkdir -p "$out"
for workspace in examples/policies tests/plugins; do
  (
    cd "$root/$workspace"
    RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C link-arg=--wasm-ld-path=/usr/lib/llvm-22/bin/wasm-ld -C link-arg=--wasi-adapter=none" \
      /usr/bin/cargo build --quiet --release --target wasm32-unknown-unknown \
        --target-dir "$target/wasm-guests" -Z build-std=std,panic_abort
  )
done
cp "$target"/wasm-guests/wasm32-unknown-unknown/release/*.wasm "$out/"
echo "$out"
