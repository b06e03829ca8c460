"""The GPU experiment's data path (scripts/gpu): packing a dataset and reading it back exactly,
training a baseline from the pack, and the data package working where PyAV is not installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("actionimages.sim")
ROOT = Path(__file__).resolve().parents[1]


def _load_train_script():
    spec = importlib.util.spec_from_file_location("gpu_train", ROOT / "scripts" / "gpu" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pack_round_trip_and_baseline_from_pack(tmp_path, expert_demos):
    from actionimages.data import open_source
    from actionimages.policy.baseline import train_baseline

    data = expert_demos(tmp_path / "demos", episodes=2)
    pack = tmp_path / "p.npz"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/gpu/pack.py"),
            str(data),
            str(pack),
            "--cameras",
            "front,overhead",
        ],
        check=True,
        capture_output=True,
    )
    packed = _load_train_script().PackedEpisodes(pack)
    src = open_source(data)
    assert len(packed) == len(src) == 2 and packed.cameras == ["front", "overhead"]
    for i in range(2):
        a, b = src.episode(i), packed.episode(i)
        assert b.instruction == a.instruction and b.task == a.task
        np.testing.assert_array_equal(b.actions, a.actions)
        np.testing.assert_array_equal(b.frames["front"], np.asarray(a.frames["front"][: len(a.actions)]))
        np.testing.assert_allclose(b.cameras["overhead"].K, a.cameras["overhead"].K)
    meta = train_baseline("bc", packed, tmp_path / "bc", max_steps=1, batch_size=2, progress=False)
    assert meta["step"] == 1 and meta["data"] == "pack:p.npz" and meta["cameras"] == ["front", "overhead"]


def test_data_package_imports_without_pyav(tmp_path):
    code = (
        "import sys; sys.modules['av'] = None\n"
        "import numpy as np\n"
        "from actionimages.data import video\n"
        "from actionimages.errors import DataError\n"
        "try:\n"
        f"    video.encode_video({str(tmp_path / 'x.mp4')!r}, np.zeros((2, 8, 8, 3), np.uint8), 10)\n"
        "except DataError as e:\n"
        "    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "ERR" in out and "PyAV" in out


def test_gpu_check_dry_run_writes_its_json(tmp_path):
    """scripts/gpu_check.sh cannot run here (no GPU); its dry run takes every stage of
    benchmarks/scale.py (bf16 build, LoRA, training steps with and without checkpointing, FLOP
    count, replanning calls) through the micro config on the CPU."""
    import json
    import os

    env = {**os.environ, "DRY_RUN": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    res = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [t["gradient_checkpointing"] for t in out["train"]] == [True, False]
    for t in out["train"]:
        assert t["grad_finite"] and t["trainable_with_grad"] > 0 and t["model_flops_per_step"] > 0
        assert t["tokens_per_s"] > 0 and t["out_of_memory_at_frames"] == []
    assert [r["num_steps"] for r in out["replan"]] == [2, 1]
    assert all(r["latency_s"] > 0 and "denoise" in r["stages_s"] for r in out["replan"])
