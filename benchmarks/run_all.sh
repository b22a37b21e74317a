#!/usr/bin/env bash
# Every benchmark on one device, each writing its JSON: on a CPU to benchmarks/results/, on a GPU to
# benchmarks/results/<device>/ (so a GPU's figures never overwrite the CPU's).
#
#   bash benchmarks/run_all.sh [--device cpu|cuda] [--quick]
#
# --quick: the overhead benchmark at n=1000 and the model benchmarks at their smallest sizes (a smoke test).
# Python: $PYTHON, else .venv/bin/python, else python3. The matgl models come from ../shared/models/matgl when there.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cpu
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export HF_HUB_OFFLINE=1
if [ "$DEVICE" != cpu ]; then export BENCH_RESULTS="benchmarks/results/${DEVICE%%:*}"; fi
MATGL=../shared/models/matgl
N=10000; RELAX_N=64; REPEATS=2
if [ "$QUICK" = 1 ]; then N=1000; RELAX_N=8; REPEATS=1; fi
run() { echo "== $*"; "$PY" "$@"; }

run benchmarks/bench_overhead.py --device "$DEVICE" --n "$N" --repeats "$REPEATS"
run benchmarks/bench_relax.py --device "$DEVICE" --n "$RELAX_N" --repeats 1
run benchmarks/bench_relax.py --device "$DEVICE" --n "$RELAX_N" --repeats 1 --model chgnet
run benchmarks/bench_pes.py --device "$DEVICE"
run benchmarks/bench_md.py --device "$DEVICE" --repeats "$REPEATS"
if [ -d "$MATGL/TensorNet-MatPES-PBE-v2025.1-PES" ]; then
  run benchmarks/bench_md.py --device "$DEVICE" --repeats "$REPEATS" --model tensornet_matpes \
      --model-path "$MATGL/TensorNet-MatPES-PBE-v2025.1-PES"
fi
run benchmarks/bench_thermo.py
if [ "$QUICK" = 1 ]; then run benchmarks/bench_phonons.py --device "$DEVICE" --n 4; else
  run benchmarks/bench_phonons.py --device "$DEVICE" --repeats "$REPEATS"; fi
echo "results in ${BENCH_RESULTS:-benchmarks/results}"
