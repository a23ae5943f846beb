#!/usr/bin/env bash
# Builds the policy plugins from source: the examples (examples/policies: Rust and C) and the
# hostile ones the tests use (tests/plugins), into $CARGO_TARGET_DIR/plugins/*.wasm, and prints
# that folder.
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

# The C example: wit-bindgen's C generator, Debian's clang and wasi-libc (malloc and qsort, which
# import nothing from WASI), linked into a component by wasm-component-ld with no WASI adapter.
if [ ! -x /usr/bin/clang-19 ] || [ ! -f /usr/lib/wasm32-wasi/libc.a ] || [ ! -d /usr/lib/llvm-19/lib/clang/19/lib/wasi ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc >/dev/null
fi
wit_bindgen="$HOME/.cache/porten-tools/bin/wit-bindgen"
if [ ! -x "$wit_bindgen" ]; then
  cargo install --quiet --locked wit-bindgen-cli@0.63.0 --no-default-features --features c \
    --root "$HOME/.cache/porten-tools" --target-dir "$target/tools"
fi
c_build="$target/wasm-guests/c"
mkdir -p "$c_build"
"$wit_bindgen" c "$root/wit" --world eviction-policy --out-dir "$c_build" >/dev/null
for source in "$root/examples/policies/largest-first-c/largest_first.c" "$c_build/eviction_policy.c"; do
  clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -I "$c_build" -c "$source" \
    -o "$c_build/$(basename "$source" .c).o"
done
/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld \
  --wasm-ld-path /usr/lib/llvm-19/bin/wasm-ld --wasi-adapter none --no-entry \
  -o "$out/largest_first_c.wasm" "$c_build/largest_first.o" "$c_build/eviction_policy.o" \
  "$c_build/eviction_policy_component_type.o" -L/usr/lib/wasm32-wasi -lc \
  /usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a
echo "$out"
