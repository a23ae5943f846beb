#!/usr/bin/env bash
# Streaming overhead of porten's HTTP endpoint against mistral.rs in-process; the same stream
# through chat completions, the Responses API, the Anthropic Messages API and Ollama's /api/chat; swap time
# (unload one model, load SmolLM2) against mistral.rs loading it directly, both on SmolLM2; and
# what tracing and metrics cost a small request (telemetry on against off); and pulls from a
# local S3 server against plain clients (set PULL_BENCH_S3S_FS to add s3s-fs); and the cost
# of a policy plugin's decision against the native policy; and what 2,000 idle connections
# cost the requests beside them; and porten against llama.cpp's llama-server on the same GGUF
# files (decode, first token on short and long prompts, a repeated long prefix); and pulls from
# a Hugging Face Hub-protocol server (olah) against huggingface_hub's hf_hub_download; and the
# hub's placement on a simulated 1,000-node fleet against a cluster-wide LRU baseline; and
# what `porten hub` adds to a one-token request against the node directly.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/porten-target}"
bash scripts/fetch-smollm2.sh >/dev/null
cargo bench --bench stream_overhead
cargo bench --bench dialects
cargo bench --bench swap
cargo bench --bench telemetry
cargo bench --bench connections
cargo bench --bench cpu_speed
cargo bench --bench prefix_cache
bash scripts/setup-test-deps.sh
cargo bench --bench pull
cargo bench --bench plugins
cargo bench --bench hub_pull
cargo bench -p porten-hub --bench fleet_simulation
cargo bench --bench hub_overhead
