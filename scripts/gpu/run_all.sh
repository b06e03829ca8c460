#!/bin/bash
# Issue 11's GPU experiment, run on the lent H200 through the device tool (docs/results/policy.md):
# three world models and two image-BC baselines trained at once for MINUTES of wall time each, on
# packed reach_target_single / reach_target demonstrations (scripts/gpu/pack.py). Results land in
# $OUT: the world models' fp16 EMA weights (scripts/gpu/unpack.py) and rest.tgz (BC runs, summaries,
# logs). Needs .pack/ and .whl/ (diffusers) carried beside the working tree.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
M=${MINUTES:-6.5}
CPE=${CPE:-12}
R=${RUNS:-/tmp/r}
mkdir -p "$R"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$R/gpu.txt" 2>&1
T="scripts/gpu/train.py"
if [ "${EXPERIMENT:-first}" = align ]; then  # second call: the spatially aligned observation path
python3 $T wm --pack .pack/single500.npz --out "$R/wm_single_align" --obs-align --minutes "$M" --clips-per-episode "$CPE" --workers 6 >"$R/wm_single_align.log" 2>&1 &
python3 $T wm --pack .pack/reach500.npz --out "$R/wm_reach_align" --obs-align --minutes "$M" --clips-per-episode "$CPE" --workers 6 >"$R/wm_reach_align.log" 2>&1 &
else
python3 $T wm --pack .pack/single500.npz --out "$R/wm_single" --minutes "$M" --clips-per-episode "$CPE" --workers 4 >"$R/wm_single.log" 2>&1 &
python3 $T wm --pack .pack/reach500.npz --out "$R/wm_reach" --minutes "$M" --clips-per-episode "$CPE" --workers 4 >"$R/wm_reach.log" 2>&1 &
python3 $T wm --pack .pack/single500.npz --out "$R/wm_single_i2a" --mask-mix i2a --minutes "$M" --clips-per-episode "$CPE" --workers 4 >"$R/wm_single_i2a.log" 2>&1 &
python3 $T bc --pack .pack/single500.npz --out "$R/bc_single" --minutes "$M" --lr 3e-4 >"$R/bc_single.log" 2>&1 &
python3 $T bc --pack .pack/reach500.npz --out "$R/bc_reach" --minutes "$M" --lr 3e-4 >"$R/bc_reach.log" 2>&1 &
fi
(sleep 150; nvidia-smi >"$R/smi_mid.txt" 2>&1) &
wait
tar czf "$OUT/rest.tgz" -C "$R" --exclude=optimizer.pt --exclude=tb --exclude=checkpoints .
for f in "$R"/*.log; do echo "== $f"; grep -v "^\s*$" "$f" | tr '\r' '\n' | grep -v "loading demonstrations" | tail -4; done
cat "$R/gpu.txt"
ls -la "$OUT"
