#!/usr/bin/env bash
# Sets up everything the tests need and runs the whole suite: clippy, unit tests, HTTP case
# folders, the fuzz test, tiny-model and SmolLM2 end-to-end tests, the official Python and npm
# SDKs, and the coding agents (Codex CLI, Claude Code).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Outside the clone, so repeated runs (and CI) build incrementally; a cold run is ~42 min.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/porten-target}"
bash scripts/setup-test-deps.sh
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace --lib --bins --tests
