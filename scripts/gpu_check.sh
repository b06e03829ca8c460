#!/bin/bash
# Issue 15's GPU check, prepared for one lent GPU (H200 or any 80 GB+ card), at most 8 minutes:
# the Wan2.2-TI2V-5B world model with random weights created directly in bf16 on the GPU, LoRA
# rank 64, at its own layout (2 views x 41 frames x 512^2, 11,264 tokens; 21 then 9 frames if 41 runs
# out of memory), batch 1:
#   - training steps (forward, backward, AdamW) with and without gradient checkpointing: tokens/s,
#     peak memory beside plan-memory's prediction, model FLOPs utilisation (FLOPs counted by
#     torch.utils.flop_counter; dense bf16 peak by device name, or PEAK_TFLOPS=...);
#   - the replanning latency (generate, joint mode, as the policy calls it) at 50 and 8 steps.
# One JSON lands in $OUT/gpu_check.json (the per-setting lines stream to the log as they finish).
#
#   bash scripts/gpu_check.sh              # on the GPU machine; OUT defaults to ./outputs/gpu_check
#   DRY_RUN=1 bash scripts/gpu_check.sh    # every stage on the micro config on a CPU, in seconds
#
# Where the machine lacks diffusers or peft, carry their wheels in .whl/ (as issue 11's run did:
# `pip download --no-deps diffusers==0.42.1 peft==0.21.2 -d .whl`); they go to /tmp/site.
# Status: prepared, not yet run on a GPU (docs/SCALE.md); the dry run passes on the CPU.
set -u
OUT=${OUT:-outputs/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
fi
export PYTHONPATH=$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
$PY - <<'EOF' || exit 1
import importlib, sys
missing = [m for m in ("torch", "diffusers", "peft", "safetensors") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing {missing}; carry their wheels in .whl/ (see this script's header)")
EOF
if [ -n "${DRY_RUN:-}" ]; then
    exec $PY benchmarks/scale.py --dry-run --checkpointing on,off --replan-steps 2,1 --out "$OUT/gpu_check.json"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
# 450 s for the benchmark leaves a margin inside 8 minutes for start-up and the copy back.
timeout 450 $PY benchmarks/scale.py --device cuda --frames 41 --size 512 --lora-rank 64 \
    --checkpointing on,off --steps 3 --fallback-frames 21,9 --replan-steps 50,8 \
    ${PEAK_TFLOPS:+--peak-tflops "$PEAK_TFLOPS"} --out "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
cat "$OUT/gpu.txt"
exit "$rc"
