#!/usr/bin/env bash
# Per-stage fastspec timing, ours vs the real FastSpecFit 3.6.1, on the same simulated targets
# in the same run, with --nmonte 0 and --nmonte 50:
#   continuum = FastSpecFit's `continuum_specfit` fsftime  vs our fit_continuum_fastspec
#   lines     = FastSpecFit's `emline_specfit` fsftime     vs our fit_lines
#   total     = FastSpecFit's `fastspec_one` fsftime       vs our wall per target
#
#   bash benches/stages.sh [N=6] [--seed S] [--outdir DIR]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N=6; SEED=7; OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seed) SEED="$2"; shift ;;
        --outdir) OUT="$2"; shift ;;
        [0-9]*) N="$1" ;;
        *) echo "stages.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
FSF="${FSF:-$ROOT/../shared/peer/fsf.sh}"
[[ -f $FSF ]] || { echo "stages.sh: needs the peer ($FSF)" >&2; exit 2; }
[[ -z $OUT ]] && OUT="$(mktemp -d /tmp/fsf-stages.XXXXXX)"
mkdir -p "$OUT"
(cd "$ROOT" && cargo build --release --bin fastspecfit 2>&1 | tail -1) || exit 1
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fastspecfit"
"$BIN" simulate -o "$OUT/sim" -n "$N" --seed "$SEED" > /dev/null 2>&1 || exit 1
RR="$(ls "$OUT"/sim/redrock-*.fits)"
COMMON=(--mapdir "$ROOT/tests/data/desi" --redux_dir "$OUT/sim"
        --fphotodir "$OUT/sim/phot.fits[PHOTINFO]" --fphotofile "$OUT/sim/phot.yaml" --mp 1)
peer_ms() { # log stage -> mean ms per target
    grep -E "fsftime [0-9.]+ (sec|min) for $2\b" "$1" \
        | sed -E 's/.*fsftime ([0-9.]+) (sec|min).*/\1 \2/' \
        | awk '{v = ($2 == "min") ? $1 * 60 : $1; s += v; n++} END {if (n) printf "%.1f", 1000 * s / n; else print "nan"}'
}
ours_ms() { # log system -> ms per target from the --profile table
    sed 's/\x1b\[[0-9;]*m//g' "$1" | awk -v s="$2" '$1 == s {print $4}'
}
printf "| nmonte | stage | ours ms/target | FastSpecFit ms/target | ratio |\n|---|---|---|---|---|\n"
for nm in 0 50; do
    NTHREADS=1 bash "$FSF" fastspec "$RR" -o "$OUT/peer-$nm.fits" "${COMMON[@]}" --nmonte "$nm" \
        --verbose > "$OUT/peer-$nm.log" 2>&1 || { echo "peer failed: $OUT/peer-$nm.log" >&2; exit 1; }
    "$BIN" fastspec "$RR" -o "$OUT/ours-$nm.fits" "${COMMON[@]}" --nmonte "$nm" --profile \
        > "$OUT/ours-$nm.log" 2>&1 || { echo "ours failed: $OUT/ours-$nm.log" >&2; exit 1; }
    for pair in "continuum:fit_continuum_fastspec:continuum_specfit" "lines:fit_lines:emline_specfit"; do
        IFS=: read -r name sys stage <<< "$pair"
        o="$(ours_ms "$OUT/ours-$nm.log" "$sys")"; p="$(peer_ms "$OUT/peer-$nm.log" "$stage")"
        r="$(awk -v o="$o" -v p="$p" 'BEGIN {if (o > 0) printf "%.1f", p / o; else print "-"}')"
        printf "| %s | %s | %s | %s | %s |\n" "$nm" "$name" "$o" "$p" "$r"
    done
    o="$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/ours-$nm.log" | awk -v n="$N" '$1 == "wall" {printf "%.1f", 1000 * $2 / n}')"
    p="$(peer_ms "$OUT/peer-$nm.log" fastspec_one)"
    r="$(awk -v o="$o" -v p="$p" 'BEGIN {if (o > 0) printf "%.1f", p / o; else print "-"}')"
    printf "| %s | total | %s | %s | %s |\n" "$nm" "$o" "$p" "$r"
done
echo "(outputs and logs in $OUT)"
