#!/usr/bin/env bash
# Import speed of the weight store against b3sum (hashing alone) and cp (copying alone), in one
# run, on the same files and filesystem. Prints medians of RUNS interleaved runs and the ratios.
#   same-filesystem import (hard link, no copy)  vs  b3sum FILE      target <= 1.1x
#   import --copy (hash while copying + fsync)   vs  cp FILE         target <= 1.1x
# The files are read from the page cache (warmed first), as a re-import or a fresh download is.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/porten-target}"
RUNS="${RUNS:-5}"
SIZE_MIB="${SIZE_MIB:-1024}"
command -v b3sum >/dev/null || { apt-get install -y b3sum >/dev/null 2>&1 || cargo install --locked b3sum; }
cargo build --release --workspace --all-targets --quiet
PORTEN="$CARGO_TARGET_DIR/release/porten"
SMOLLM2="$(bash scripts/fetch-smollm2.sh)"

WORK=.cache/bench-store   # inside the clone: the same filesystem as the stores below
rm -rf "$WORK" && mkdir -p "$WORK"
BIG="$WORK/big-${SIZE_MIB}MiB.gguf"
python3 - "$BIG" "$SIZE_MIB" <<'PY'
import os, struct, sys
path, mib = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    key = b"general.architecture"
    f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<IQ", 8, 5) + b"llama")
    for _ in range(mib):
        f.write(os.urandom(1 << 20))
PY

now() { date +%s.%N; }
# seconds FUNC ARGS: runs a command and prints its wall time.
seconds() { local s; s=$(now); "$@" >/dev/null 2>&1; echo "$(now) - $s" | bc -l; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

bench_file() {
    local file=$1 label=$2 bytes
    bytes=$(stat -c %s "$file")
    cat "$file" >/dev/null
    local b3 cp cps link copy
    : >"$WORK/t.b3"; : >"$WORK/t.cp"; : >"$WORK/t.cps"; : >"$WORK/t.link"; : >"$WORK/t.copy"
    for _ in $(seq "$RUNS"); do
        seconds b3sum "$file" >>"$WORK/t.b3"
        rm -f "$WORK/copy"; seconds cp "$file" "$WORK/copy" >>"$WORK/t.cp"
        rm -f "$WORK/copy"; seconds sh -c "cp '$file' '$WORK/copy' && sync '$WORK/copy'" >>"$WORK/t.cps"
        rm -f "$WORK/copy"
        rm -rf "$WORK/home"; seconds "$PORTEN" import "$file" --name bench --home "$WORK/home" >>"$WORK/t.link"
        rm -rf "$WORK/home"; seconds "$PORTEN" import "$file" --name bench --copy --home "$WORK/home" >>"$WORK/t.copy"
        rm -rf "$WORK/home"
    done
    b3=$(median <"$WORK/t.b3"); cp=$(median <"$WORK/t.cp"); cps=$(median <"$WORK/t.cps")
    link=$(median <"$WORK/t.link"); copy=$(median <"$WORK/t.copy")
    gbps() { echo "scale=2; $bytes / $1 / 1000000000" | bc -l; }
    ratio() { echo "scale=3; $1 / $2" | bc -l; }
    echo "== $label ($bytes bytes, median of $RUNS runs)"
    printf '  %-34s %8.3f s  %6s GB/s\n' "b3sum" "$b3" "$(gbps "$b3")"
    printf '  %-34s %8.3f s  %6s GB/s   ratio %sx (target <= 1.1x)\n' "porten import (link)" "$link" "$(gbps "$link")" "$(ratio "$link" "$b3")"
    printf '  %-34s %8.3f s\n' "cp" "$cp"
    printf '  %-34s %8.3f s\n' "cp + sync" "$cps"
    printf '  %-34s %8.3f s   ratio %sx vs cp (target <= 1.1x), %sx vs cp + sync\n' "porten import --copy (fsynced)" "$copy" "$(ratio "$copy" "$cp")" "$(ratio "$copy" "$cps")"
}

echo "machine: $(nproc) cores, $(df -T "$WORK" | awk 'NR==2 {print $2}') filesystem"
bench_file "$BIG" "${SIZE_MIB} MiB random GGUF"
bench_file "$SMOLLM2" "SmolLM2-135M-Instruct Q4_1"
rm -rf "$WORK"
