#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct, builds porten (release), imports the model into porten's weight
# store as `smollm2` (a hard link, no copy; a no-op when already there) and serves it on an
# OpenAI endpoint at http://127.0.0.1:8080/v1 (PORTEN_LISTEN overrides). Extra arguments go to
# `porten serve`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/porten-target}"
gguf=$(bash scripts/fetch-smollm2.sh)
# `--all-targets` keeps the features identical to the test build, so both share one compile.
cargo build --release --workspace --all-targets
porten="$CARGO_TARGET_DIR/release/porten"
"$porten" import "$gguf" --name smollm2
exec "$porten" serve --model smollm2 "$@"
