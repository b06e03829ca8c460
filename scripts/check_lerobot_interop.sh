#!/usr/bin/env bash
# Check our datasets against the real LeRobot loader and editing tools, in a separate virtualenv.
#
#   scripts/check_lerobot_interop.sh [WORKDIR]      (not part of `make test`; needs PyPI)
#
# 1. Makes $LEROBOT_VENV (default /tmp/lerobot-venv) once: torch==2.13.0 first, then lerobot
#    ($LEROBOT_SPEC, default lerobot==0.4.4) with --no-deps, since it pins torch<2.11 and
#    torchvision<0.26, and then the dependencies its dataset code imports, under a constraints
#    file pinning torch==2.13.0 (torchvision==0.28.0 is the release built for torch 2.13).
#    TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) installs torch and torchvision
#    from that index; TORCHCODEC_SPEC (e.g. "torchcodec==0.X") adds LeRobot's default decoder.
# 2. Collects 2 pick_up_cube episodes (the tool points down: Euler rx flips) with our CLI.
# 3. Loads them with lerobot.datasets.lerobot_dataset.LeRobotDataset; compares a frame of every
#    camera and the action / state / 6-D rotation rows with our reader.
# 4. Runs LeRobot's delete_episodes / split_dataset / merge_datasets / remove_feature, records which
#    of our columns survive, restores them (actionimages dataset restore-calibration), checks with
#    `actionimages dataset check --full` and reloads the result with LeRobot. After delete_episodes,
#    our `collect` must refuse to append before the restore, and after it append only the deleted
#    seed, the result still loading in LeRobot.
# Prints RESULT: PASS (exit 0), PARTIAL (exit 3: all passed, but frames went through the PyAV
# stand-in because LeRobot's own decoder cannot run here; the reason is printed) or FAIL (exit 1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-/tmp/actionimages-lerobot-interop}"
VENV="${LEROBOT_VENV:-/tmp/lerobot-venv}"
BASE_PYTHON="${BASE_PYTHON:-python3.11}"
LEROBOT_SPEC="${LEROBOT_SPEC:-lerobot==0.4.4}"
OURS_PY="${ACTIONIMAGES_PYTHON:-$HERE/.venv/bin/python}"   # an environment with actionimages
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MUJOCO_GL="${MUJOCO_GL:-egl}"

ai() { "$OURS_PY" -c 'import sys; from actionimages.cli import main; sys.exit(main(sys.argv[1:]))' "$@"; }
lr() { "$VENV/bin/python" "$HERE/scripts/lerobot_interop.py" "$@"; }

# ---------------------------------------------------------------- 1. LeRobot's environment
if ! "$VENV/bin/python" -c "import lerobot, torch, sys; sys.exit(not torch.__version__.startswith('2.13.0'))" 2>/dev/null; then
    echo "== creating $VENV"
    "$BASE_PYTHON" -m venv "$VENV"
    PIP=("$VENV/bin/pip" install -q)
    INDEX=()
    [[ -n "${TORCH_INDEX_URL:-}" ]] && INDEX=(--index-url "$TORCH_INDEX_URL")
    "${PIP[@]}" "${INDEX[@]}" "torch==2.13.0"
    echo "torch==2.13.0" > "$VENV/constraints.txt"
    "${PIP[@]}" --no-deps "$LEROBOT_SPEC"
    "${PIP[@]}" -c "$VENV/constraints.txt" "${INDEX[@]}" "torchvision==0.28.0"
    # what lerobot.datasets imports (lerobot 0.4.4's own pins, minus torch / torchvision / torchcodec)
    "${PIP[@]}" -c "$VENV/constraints.txt" "datasets>=4.0.0,<5.0.0" "huggingface-hub>=0.34.2,<0.36.0" \
        "accelerate>=1.10.0,<2.0.0" "av>=15.0.0,<16.0.0" "draccus==0.10.0" "jsonlines>=4.0.0,<5.0.0" \
        "packaging>=24.2,<26.0" "einops>=0.8.0,<0.9.0" "termcolor>=2.4.0,<4.0.0" \
        "deepdiff>=7.0.1,<9.0.0" pandas pyarrow pillow numpy
    if [[ -n "${TORCHCODEC_SPEC:-}" ]]; then
        "${PIP[@]}" -c "$VENV/constraints.txt" "${INDEX[@]}" "$TORCHCODEC_SPEC"
    fi
fi
"$VENV/bin/python" -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'torch {v} in $VENV; expected 2.13.0')"

# ---------------------------------------------------------------- 2. a dataset, and our view of it
rm -rf "$WORK" && mkdir -p "$WORK"
ai collect --task pick_up_cube --episodes 2 --image-size 64 --workers 1 --out "$WORK/ds" --quiet
ai dataset check --full "$WORK/ds" | tail -1
"$OURS_PY" "$HERE/scripts/lerobot_interop.py" ours "$WORK/ds" "$WORK/ours.npz"

# ---------------------------------------------------------------- 3. LeRobot's view; its edits
lr lerobot "$WORK/ds" "$WORK/ours.npz" "$WORK/edit" "$WORK/lerobot.json" 2> "$WORK/lerobot.stderr" || {
    tail -20 "$WORK/lerobot.stderr"; echo "RESULT: FAIL (the LeRobot half failed: $WORK/lerobot.stderr)"; exit 1; }

# ---------------------------------------------------------------- 4. restore, check, reload
status=0
for tool in delete_episodes split_dataset merge_datasets remove_feature; do
    dir="$("$OURS_PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['edits'][sys.argv[2]].get('dir', ''))" "$WORK/lerobot.json" "$tool")"
    if [[ -z "$dir" ]]; then echo "$tool: LeRobot failed (see $WORK/lerobot.json)"; status=1; continue; fi
    if [[ "$tool" == delete_episodes ]]; then
        # an append to the edited dataset is refused (it lost our keys: seeds would be duplicated)
        if ai collect --task pick_up_cube --episodes 2 --image-size 64 --out "$dir" --quiet > "$WORK/append.log" 2>&1; then
            echo "delete_episodes: an append before restore-calibration was accepted"; status=1
        fi
    fi
    { ai dataset restore-calibration "$dir" --from "$WORK/ds" && ai dataset check --full "$dir" | tail -1 \
        && lr reload "$dir" 2>/dev/null; } > "$WORK/$tool.log" 2>&1 || status=1
    if [[ "$tool" == delete_episodes ]]; then
        # restored: the append re-collects only the deleted seed, and LeRobot still loads the result
        { ai collect --task pick_up_cube --episodes 2 --image-size 64 --out "$dir" --quiet \
            && ai dataset check --full "$dir" | tail -1 && lr reload "$dir" 2>/dev/null; } >> "$WORK/$tool.log" 2>&1 || status=1
    fi
    echo "$tool: $(tr '\n' ' ' < "$WORK/$tool.log")"
done

"$OURS_PY" - "$WORK/lerobot.json" "$status" <<'EOF'
import json, sys
res, status = json.load(open(sys.argv[1])), int(sys.argv[2])
print("versions:", res["versions"])
for note in res["notes"]:
    print("note:", note)
ok = status == 0
for name, c in res["checks"].items():
    print(f"{'ok  ' if c['ok'] else 'FAIL'} {name}: {c['detail']}")
    ok &= c["ok"]
for tool, e in res["edits"].items():
    print(f"edit {tool}: " + (e.get("error") or f"actionimages columns {e['columns'] or 'DROPPED'}, "
          f"checksums {'kept' if e['checksums'] else 'dropped'}, rot6d features {e['rot6d features']}"))
    ok &= "error" not in e
if not ok:
    print("RESULT: FAIL"); sys.exit(1)
if res["decoder"].startswith("PyAV stand-in"):
    print("RESULT: PARTIAL (everything passed; frames decoded by the PyAV stand-in, see the note)"); sys.exit(3)
print("RESULT: PASS")
EOF
