#!/bin/bash
# Runs the screen on two commits and compares the run files at zero tolerance (structures included):
#   bash benchmarks/compare_commits.sh OLD NEW [hydra overrides...]      e.g. ... 65a1860 c2d0e37 preset=smoke
# Each commit runs from its own git worktree with its own cold reference cache, both at once, one thread each:
# with one thread the float32 model sums are bit-reproducible (with two, SevenNet-0 differs by ~1e-7 eV/Å from call
# to call), so any difference is the code's. Files and logs in ${OUT:-/tmp/compare_commits}.
set -euo pipefail
old=$1 new=$2; shift 2
root=$(git rev-parse --show-toplevel) out=${OUT:-/tmp/compare_commits}
mkdir -p "$out"
for rev in "$old" "$new"; do
  tree="$out/tree-$rev"
  [ -d "$tree" ] || git -C "$root" worktree add -f "$tree" "$rev" > /dev/null
  rm -rf "$out/cache-$rev" "$out/$rev.h5"
  (cd "$tree" && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 HF_HUB_OFFLINE=1 \
     COATING_CACHE="$out/cache-$rev" "$root/.venv/bin/python" -m engine.screen "$@" output="$out/$rev.h5" \
     > "$out/$rev.log" 2>&1) &
done
wait
"$root/.venv/bin/python" -m engine.compare "$out/$old.h5" "$out/$new.h5" --structures --rtol 0 --atol 0 --atol-structure 0
