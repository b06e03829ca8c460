"""Baselines: training on real expert demonstrations, checkpoint/resume, closed-loop evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from actionimages.errors import ActionImagesError
from actionimages.policy.baseline.common import chunk_targets, chunk_to_actions, state_features

sim = pytest.importorskip("actionimages.sim")


def test_chunk_parametrisation_roundtrip():
    rng = np.random.default_rng(0)
    cur = np.array([0.4, 0.1, 0.3, np.pi - 0.1, 0.05, 0.3, 1.0])
    fut = cur + np.concatenate([rng.normal(0, 0.03, (8, 3)), rng.normal(0, 0.1, (8, 3)), np.zeros((8, 1))], 1)
    fut[4:, 6] = 0.0
    t = chunk_targets(cur, fut)
    logits = t.copy()
    logits[:, 6] = np.where(t[:, 6] > 0.5, 5.0, -5.0)
    back = chunk_to_actions(cur, logits)
    from actionimages.eval.metrics import pose_errors

    err = pose_errors(back, fut)
    assert err["position_m"].max() < 1e-6 and err["rotation_deg"].max() < 1e-4
    assert err["gripper_correct"].all()
    assert state_features(cur[None]).shape == (1, 10)


@pytest.mark.parametrize("kind", ["bc", "lowdim"])
def test_baseline_train_resume_and_evaluate(tmp_path, kind, expert_demos):
    from actionimages.eval.runner import PolicySpec, evaluate
    from actionimages.policy.baseline import load_baseline_policy, train_baseline
    from actionimages.policy.registry import detect_kind

    data = expert_demos(tmp_path / "demos", episodes=2)
    run = tmp_path / kind
    torch.manual_seed(0)
    meta = train_baseline(kind, data, run, max_steps=2, batch_size=2, checkpoint_every=1, progress=False)
    assert meta["step"] == 2 and meta["cameras"] == ["front", "overhead"] and meta["train_frames"] >= 8
    assert (run / "model.safetensors").is_file() and detect_kind(run) == kind
    first_step = json.loads((run / "baseline.json").read_text())["step"]
    first_cpu = json.loads((run / "baseline.json").read_text())["cpu_seconds"]
    meta = train_baseline(kind, data, run, max_steps=3, batch_size=2, progress=False)  # resumes
    assert meta["step"] == 3 and first_step == 2
    assert meta["cpu_seconds"] > first_cpu > 0  # CPU time adds up across resumes
    with pytest.raises(ActionImagesError, match="holds a"):
        train_baseline("lowdim" if kind == "bc" else "bc", data, run, max_steps=1)
    policy = load_baseline_policy(run, execute=3)
    res = evaluate(
        PolicySpec(kind, str(run)), ["reach_target"], "heldout", episodes=1, max_steps=5, progress=False
    )
    e = res["tasks"]["reach_target"]
    steps = res["episodes"][0]["steps"]
    assert e["episodes"] == 1 and e["replans"] == -(-steps // 4)  # default k = horizon / 2 = 4
    assert e["latency_s"]["calls"] == e["replans"]
    assert policy.execute == 3


def test_baseline_rejects_bad_input(tmp_path):
    from actionimages.policy.baseline import train_baseline

    with pytest.raises(ActionImagesError, match="unknown baseline"):
        train_baseline("rl", tmp_path, tmp_path / "x", max_steps=1)
    with pytest.raises(ActionImagesError):
        train_baseline("bc", tmp_path / "missing", tmp_path / "y", max_steps=1)


def test_eval_compares_several_checkpoints_in_one_command(tmp_path, expert_demos, capsys):
    from actionimages.cli import main
    from actionimages.policy.baseline import train_baseline

    data = expert_demos(tmp_path / "demos", episodes=2)
    for kind in ("bc", "lowdim"):
        train_baseline(kind, data, tmp_path / kind, max_steps=1, batch_size=2, progress=False)
    out = tmp_path / "cmp"
    argv = ["eval", "--task", "reach_target", "--episodes", "1", "--max-steps", "3", "--videos", "0"]
    argv += [
        "--checkpoint",
        str(tmp_path / "bc"),
        "--checkpoint",
        str(tmp_path / "lowdim"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| test | reach_target |" in text and "| bc |" in text and "| lowdim |" in text
    for kind in ("bc", "lowdim"):
        res = json.loads((out / kind / "results.json").read_text())
        assert res["split"] == "test" and res["tasks"]["reach_target"]["episodes"] == 1
    assert main(argv[:-2] + ["--out", str(out), "--guidance", "nan"]) == 2  # NaN guidance is refused


def test_baseline_export_ships_fp16_weights_with_a_checked_checksum(tmp_path, expert_demos):
    """``actionimages export`` on a baseline run: a folder without optimizer state whose fp16
    weights act like the run's, whose recorded SHA-256 catches a changed byte, and which eval
    detects as the baseline it is."""
    from actionimages.cli import main
    from actionimages.policy.baseline import load_baseline, train_baseline
    from actionimages.policy.registry import detect_kind
    from actionimages.train.checkpoint import training_cpu_hours

    data = expert_demos(tmp_path / "demos", episodes=2)
    run = tmp_path / "bc"
    train_baseline("bc", data, run, max_steps=2, batch_size=2, progress=False)
    recipe = tmp_path / "RECIPE.md"
    recipe.write_text("how it was made\n")
    out = tmp_path / "shipped_bc"
    argv = ["export", "--checkpoint", str(run), "--out", str(out), "--recipe", str(recipe)]
    argv += ["--cpu-hours", "0.5"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "RECIPE.md",
        "baseline.json",
        "model.safetensors",
        "provenance.json",
    ]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["kind"] == "bc" and prov["step"] == 2 and prov["dtype"] == "fp16" and prov["parameters"] > 0
    assert training_cpu_hours(out) == 0.5 and detect_kind(out) == "bc"

    net, _ = load_baseline(run)
    shipped, _ = load_baseline(out)
    for (name, a), b in zip(net.state_dict().items(), shipped.state_dict().values(), strict=True):
        assert b.dtype == torch.float32, name  # fp16 on disk, fp32 in memory
        torch.testing.assert_close(b, a.half().float(), msg=name)

    raw = bytearray((out / "model.safetensors").read_bytes())
    raw[-1] ^= 0x01
    (out / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ActionImagesError, match="changed since export"):
        load_baseline(out)


def test_bc_film_starts_as_plain_bc_and_lets_the_instruction_change_the_keypoints():
    import torch

    from actionimages.policy.bc.modeling import BCNet

    torch.manual_seed(0)
    plain = BCNet(num_views=2, horizon=4)
    film = BCNet(num_views=2, horizon=4, film=True)
    missing, unexpected = film.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("film.") for k in missing)
    img, state = torch.rand(1, 2, 3, 64, 64) * 2 - 1, torch.zeros(1, 10)
    with torch.no_grad():
        red = ["reach the red target"]
        assert torch.equal(film(img, state, red), plain(img, state, red))
        for lin in film.film.values():
            torch.nn.init.normal_(lin.weight, std=0.5)
        a = film(img, state, ["reach the red target"])
        b = film(img, state, ["reach the blue target"])
    assert not torch.allclose(a, b)
