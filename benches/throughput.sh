#!/usr/bin/env bash
# One-command throughput benchmark: our engine vs the real FastSpecFit 3.6.1 on the same
# simulated DESI healpix set.
#
#   bash benches/throughput.sh [N=200] [--no-peer] [--seed S] [--peer-spec-ntargets K=N]
#                              [--peer-procs P=nproc] [--outdir DIR] [--keep]
#
# 1. builds the release binary, simulates N targets (seeded) into a temporary directory;
# 2. runs our fastphot and fastspec with --mp 1 and --mp <all cores> under /usr/bin/time
#    (wall, peak RSS) and with --profile (per-system table);
# 3. unless --no-peer (or the peer is not installed), runs the real FastSpecFit on the same
#    files with one thread (NTHREADS=1, --mp 1): fastphot on all N targets, fastspec on the
#    first K targets (default all: the mix of σ-fit and other targets sets the mean cost),
#    split into P single-threaded processes on consecutive slices (--firsttarget/--ntargets)
#    run side by side; per-target time per core is reported both from wall time (P·wall/K,
#    start-up included) and from its 'fsftime ... fastspec_one' log lines (summed);
# 4. prints the table, the agreement of our fastphot SPECPHOT with the peer's
#    (`fastspecfit compare --hdu SPECPHOT`), the agreement of our fastspec with the peer's on
#    key columns, and our per-system profiles.
#
# Nothing is written inside the repository except cargo's target directory. Timings on a
# shared machine are noisy: run it on an idle machine for numbers to quote.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N=200; SEED=1; K=""; PEER=1; KEEP=0; OUT=""; PP="$(nproc)"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-peer) PEER=0 ;;
        --seed) SEED="$2"; shift ;;
        --peer-spec-ntargets) K="$2"; shift ;;
        --peer-procs) PP="$2"; shift ;;
        --outdir) OUT="$2"; KEEP=1; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        [0-9]*) N="$1" ;;
        *) echo "throughput.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[[ -z $K || $K -gt $N ]] && K="$N"
FSF="${FSF:-$ROOT/../shared/peer/fsf.sh}"
PEER_DIR="${PEER_DIR:-$HOME/.cache/fastspecfit-peer}"
MAPDIR="$ROOT/tests/data/desi"
NCPU="$(nproc)"
TIME=/usr/bin/time
[[ -x $TIME ]] || { echo "throughput.sh: needs GNU time at /usr/bin/time" >&2; exit 2; }
if [[ $PEER == 1 && ( ! -f $FSF || ! -x $PEER_DIR/venv/bin/fastphot ) ]]; then
    echo "throughput.sh: peer not installed ($PEER_DIR/venv, $FSF); running without it" >&2
    PEER=0
fi
if [[ -z $OUT ]]; then OUT="$(mktemp -d /tmp/fsf-throughput.XXXXXX)"; fi
mkdir -p "$OUT"
if [[ $KEEP == 0 ]]; then trap 'rm -rf "$OUT"' EXIT; fi
ROWS="$OUT/rows.tsv"; : > "$ROWS"
strip() { sed 's/\x1b\[[0-9;]*m//g' "$@"; }

echo "== building the release binary"
(cd "$ROOT" && cargo build --release --bin fastspecfit 2>&1 | tail -1) || exit 1
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fastspecfit"
[[ -x $BIN ]] || { echo "throughput.sh: no $BIN" >&2; exit 1; }

echo "== simulating $N targets (seed $SEED) into $OUT/sim"
if ! "$BIN" simulate -o "$OUT/sim" -n "$N" --seed "$SEED" > "$OUT/simulate.log" 2>&1; then
    echo "throughput.sh: simulate failed:" >&2; tail -20 "$OUT/simulate.log" >&2; exit 1
fi
RR="$(ls "$OUT"/sim/redrock-*.fits)"
COMMON=(--mapdir "$MAPDIR" --redux_dir "$OUT/sim"
        --fphotodir "$OUT/sim/phot.fits[PHOTINFO]" --fphotofile "$OUT/sim/phot.yaml")

# row: program engine threads targets wall_s rss_kb note
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$ROWS"; }

THREADS=(1); [[ $NCPU -gt 1 ]] && THREADS+=("$NCPU")
for prog in fastphot fastspec; do
    for mp in "${THREADS[@]}"; do
        tag="$prog-ours-mp$mp"
        echo "== ours: $prog --mp $mp"
        $TIME -f '%e %M' -o "$OUT/$tag.time" "$BIN" "$prog" "$RR" -o "$OUT/$tag.fits" "${COMMON[@]}" \
            --mp "$mp" --profile > "$OUT/$tag.log" 2>&1
        rc=$?
        strip "$OUT/$tag.log" > "$OUT/$tag.clean.log"
        if [[ $rc -ne 0 ]]; then
            echo "   our $prog --mp $mp FAILED (exit $rc); last lines:" >&2
            tail -15 "$OUT/$tag.clean.log" >&2
        fi
        read -r wall rss < <(tail -1 "$OUT/$tag.time")
        ntg="$(grep -o 'targets=[0-9]*' "$OUT/$tag.clean.log" | tail -1 | cut -d= -f2)"
        nfl="$(grep -o 'flagged=[0-9]*' "$OUT/$tag.clean.log" | tail -1 | cut -d= -f2)"
        note=""
        [[ $rc -ne 0 ]] && note="FAILED exit $rc $note"
        [[ -n $nfl && $nfl != 0 ]] && note="$nfl flagged $note"
        row "$prog" ours "$mp" "${ntg:-0}" "$wall" "$rss" "$note"
    done
done

PEER_PHOT_OK=0
PEER_SPEC_OK=0
if [[ $PEER == 1 ]]; then
    tag="fastphot-peer"
    echo "== peer: fastphot --mp 1 on $N targets (NTHREADS=1)"
    NTHREADS=1 $TIME -f '%e %M' -o "$OUT/$tag.time" bash "$FSF" fastphot "$RR" -o "$OUT/$tag.fits" \
        "${COMMON[@]}" --mp 1 --verbose > "$OUT/$tag.log" 2>&1
    rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "   FastSpecFit fastphot FAILED (exit $rc); last lines:" >&2; tail -15 "$OUT/$tag.log" >&2
    else PEER_PHOT_OK=1; fi
    read -r wall rss < <(tail -1 "$OUT/$tag.time")
    note="wall incl. Python start-up"; [[ $rc -ne 0 ]] && note="FAILED exit $rc"
    row fastphot peer 1 "$N" "$wall" "$rss" "$note"
    read -r cnt sum < <(grep -E 'fsftime [0-9.]+ sec for fastspec_one' "$OUT/$tag.log" \
        | sed -E 's/.*fsftime ([0-9.]+) sec.*/\1/' | awk '{s+=$1; n++} END {printf "%d %.3f\n", n, s}')
    row fastphot "peer (fsftime)" 1 "$cnt" "$sum" "-" "sum of fastspec_one lines"

    # fastspec: K targets in PP single-threaded slices side by side
    [[ $PP -gt $K ]] && PP="$K"
    echo "== peer: fastspec --mp 1 on $K targets in $PP single-threaded processes (NTHREADS=1)"
    per=$(( (K + PP - 1) / PP )); pids=(); t0=$(date +%s.%N)
    for ((p = 0; p < PP; p++)); do
        first=$(( p * per )); cnt=$per; [[ $(( first + cnt )) -gt $K ]] && cnt=$(( K - first ))
        [[ $cnt -le 0 ]] && continue
        NTHREADS=1 $TIME -f '%e %M' -o "$OUT/fastspec-peer-$p.time" bash "$FSF" fastspec "$RR" \
            -o "$OUT/fastspec-peer-$p.fits" "${COMMON[@]}" --mp 1 --firsttarget "$first" \
            --ntargets "$cnt" --verbose > "$OUT/fastspec-peer-$p.log" 2>&1 &
        pids+=($!)
    done
    rc=0; for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
    wall="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')"
    rss="$(cat "$OUT"/fastspec-peer-*.time | awk '{if ($2 > m) m = $2} END {print m}')"
    if [[ $rc -ne 0 ]]; then
        echo "   FastSpecFit fastspec FAILED (exit $rc); see $OUT/fastspec-peer-*.log" >&2
    else PEER_SPEC_OK=1; fi
    note="$PP processes x 1 thread, wall incl. Python start-up"; [[ $rc -ne 0 ]] && note="FAILED exit $rc"
    row fastspec peer "$PP" "$K" "$wall" "$rss" "$note"
    read -r cnt sum < <(cat "$OUT"/fastspec-peer-*.log | grep -E 'fsftime [0-9.]+ (sec|min) for fastspec_one' \
        | sed -E 's/.*fsftime ([0-9.]+) (sec|min).*/\1 \2/' \
        | awk '{v = ($2 == "min") ? $1 * 60 : $1; s += v; n++} END {printf "%d %.3f\n", n, s}')
    row fastspec "peer (fsftime)" 1 "$cnt" "$sum" "-" "sum of fastspec_one lines"
fi

echo
echo "== throughput ($(date -u +%Y-%m-%d), $(uname -m), $NCPU cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
echo "   source: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)"
echo "   N=$N seed=$SEED; wall and peak RSS from /usr/bin/time; targets/s/core = targets / wall / threads"
awk -F'\t' '
    { prog[NR]=$1; eng[NR]=$2; thr[NR]=$3; tg[NR]=$4; wall[NR]=$5; rss[NR]=$6; note[NR]=$7
      tps[NR] = (wall[NR] > 0 && tg[NR] > 0) ? tg[NR] / wall[NR] / thr[NR] : 0
      if (eng[NR] == "peer") peer[$1] = tps[NR]
      if (eng[NR] == "peer (fsftime)") peerf[$1] = tps[NR] }
    END {
      printf "| %-8s | %-14s | %7s | %7s | %8s | %14s | %12s | %-22s | %s\n", "program", "engine", "threads", "targets", "wall s", "targets/s/core", "peak RSS MB", "ours/peer per core", "note"
      printf "|----------|----------------|---------|---------|----------|----------------|--------------|------------------------|-----\n"
      for (i = 1; i <= NR; i++) {
        r = "-"
        if (eng[i] == "ours" && peer[prog[i]] > 0) {
          r = sprintf("%.2f", tps[i] / peer[prog[i]])
          if (peerf[prog[i]] > 0) r = r sprintf(" (%.2f fsftime)", tps[i] / peerf[prog[i]]) }
        mb = (rss[i] == "-") ? "-" : sprintf("%.0f", rss[i] / 1024)
        printf "| %-8s | %-14s | %7s | %7s | %8.2f | %14.3f | %12s | %-22s | %s\n", prog[i], eng[i], thr[i], tg[i], wall[i], tps[i], mb, r, note[i]
      } }' "$ROWS"

if [[ $PEER_PHOT_OK == 1 && -f $OUT/fastphot-ours-mp1.fits ]]; then
    echo
    echo "== agreement: fastspecfit compare <peer fastphot> <ours fastphot --mp 1> --hdu SPECPHOT (rtol 1e-3)"
    "$BIN" compare "$OUT/fastphot-peer.fits" "$OUT/fastphot-ours-mp1.fits" --hdu SPECPHOT > "$OUT/compare.txt" 2>&1
    sed -n '1,4p' "$OUT/compare.txt"
    grep -E '^(COEFF|TAUV |LOGMSTAR |ABSMAG)' "$OUT/compare.txt"
    awk '/^(COEFF|TAUV |LOGMSTAR |ABSMAG)/ { if ($1 ~ /IVAR/) { si+=$NF; ni++ } else { s+=$NF; n++ } }
         END { if (n) printf "mean frac_tol: values %.4f over %d columns; IVARs %.4f over %d columns\n", s/n, n, si/ni, ni }' "$OUT/compare.txt"
    # The simulated photometry has 5 bands and the fit 5 templates + TAUV: targets whose bands are
    # fitted exactly (RCHI2_PHOT ~ 0) have no unique COEFF, so split the agreement by that.
    "$PEER_DIR/venv/bin/python" - "$OUT/fastphot-peer.fits" "$OUT/fastphot-ours-mp1.fits" <<'PY' || true
import sys, warnings
import numpy as np
from astropy.table import Table
warnings.simplefilter('ignore')
a = Table.read(sys.argv[1], 'SPECPHOT'); b = Table.read(sys.argv[2], 'SPECPHOT')
row = {t: i for i, t in enumerate(b['TARGETID'])}
b = b[[row[t] for t in a['TARGETID']]]
deg = np.asarray(a['RCHI2_PHOT']) < 1e-6
print(f"{deg.sum()} of {len(a)} targets fit all bands exactly (peer RCHI2_PHOT < 1e-6; 5 bands vs "
      "5 templates + TAUV), where COEFF is not unique. Fraction of targets with every element within rtol 1e-3:")
def frac(col, m, rtol=1e-3):
    x, y = np.asarray(a[col][m], float), np.asarray(b[col][m], float)
    ok = (np.abs(x - y) <= rtol * np.abs(y)) | (x == y)
    return ok.reshape(len(x), -1).all(axis=1).mean() if m.sum() else float('nan')
cols = ["COEFF", "TAUV", "LOGMSTAR"] + [c for c in a.colnames if c.startswith("ABSMAG") and "IVAR" not in c]
for name, m in (("well-determined", ~deg), ("exact-fit", deg)):
    print(f"  {name:15s} ({m.sum():3d} targets): " + ", ".join(f"{c} {frac(c, m):.3f}" for c in cols))
PY
fi

if [[ $PEER_SPEC_OK == 1 && -f $OUT/fastspec-ours-mp1.fits ]]; then
    echo
    echo "== agreement: our fastspec --mp 1 vs the peer's on the same $K targets (rtol 1e-3; key columns)"
    for hdu in SPECPHOT FASTSPEC; do
        for p in "$OUT"/fastspec-peer-*.fits; do
            "$BIN" compare "$p" "$OUT/fastspec-ours-mp1.fits" --hdu "$hdu" 2>/dev/null | tail -n +5
        done
    done | awk '$1 ~ /^(COEFF|TAUV|VDISP|VDISP_IVAR|LOGMSTAR|SFR|DN4000_MODEL|APERCORR|RCHI2_CONT|RCHI2_LINE|HALPHA_FLUX|HBETA_FLUX|OIII_5007_FLUX|OII_3729_FLUX|MGII_2803_FLUX|CIV_1549_FLUX|HALPHA_SIGMA|OIII_5007_SIGMA)$/ {
            n[$1] += $2; f[$1] += $2 * $NF }
        END { for (c in n) printf "  %-16s %5d targets, fraction within rtol 1e-3: %.3f\n", c, n[c], f[c] / n[c] }' | sort
    # the issue tolerances: lines with S/N >= 3 within 2% or 0.1 sigma (fluxes) and 2 km/s
    # or 0.1 sigma (line widths, where the width itself has S/N >= 3); Monte Carlo ivars
    # within 30%
    agree() { # label awk-regex compare-flags...
        local label=$1 re=$2; shift 2
        for p in "$OUT"/fastspec-peer-*.fits; do
            "$BIN" compare "$p" "$OUT/fastspec-ours-mp1.fits" --hdu FASTSPEC "$@" 2>/dev/null | tail -n +5
            "$BIN" compare "$p" "$OUT/fastspec-ours-mp1.fits" --hdu SPECPHOT "$@" 2>/dev/null | tail -n +5
        done | awk -v re="$re" -v label="$label" '$1 ~ re && $2 > 0 { n[$1] += $2; f[$1] += $2 * $NF }
            END { for (c in n) printf "  %-16s %5d targets, fraction %s: %.3f\n", c, n[c], label, f[c] / n[c] }' | sort
    }
    echo "== agreement at the issue tolerances (lines with S/N >= 3 in both catalogues)"
    agree "within 2% or 0.1 sigma" '^(HALPHA|HBETA|OIII_5007|OII_3729|NII_6584|MGII_2803|CIV_1549)_FLUX$' \
        --rtol 0.02 --stol 0.1 --min-snr 3
    agree "within 2 km/s or 0.1 sigma" '^(HALPHA|HBETA|OIII_5007|OII_3729|MGII_2803)_SIGMA$' \
        --rtol 0 --atol 2 --stol 0.1 --min-snr 3
    agree "within 30%" '^(VDISP_IVAR|TAUV_IVAR|DN4000_MODEL_IVAR)$' --rtol 0.3
fi

echo
echo "== our per-system profiles (--profile)"
for f in "$OUT"/*-ours-mp*.clean.log; do
    echo "-- $(basename "$f" .clean.log)"
    sed -n '/^system  *calls/,$p' "$f"
done
[[ $KEEP == 1 ]] && echo && echo "outputs kept in $OUT"
exit 0
