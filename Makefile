# Everyday commands. The target dir lives outside the clone so every checkout shares one build.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/porten-target

.PHONY: serve test bench fmt clippy
serve: ; bash scripts/serve.sh
test: ; bash scripts/test.sh
bench: ; bash scripts/bench.sh && bash scripts/bench-store.sh
fmt: ; cargo fmt --all
clippy: ; cargo clippy --release --workspace --all-targets -- -D warnings
