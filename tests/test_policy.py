"""Closed-loop policies through the evaluation runner, on the real embedded sim."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from actionimages.errors import ActionImagesError
from actionimages.eval.runner import PolicySpec, episode_seed, evaluate, run_episode
from actionimages.policy.action_images.policy import ActionImagePolicy
from actionimages.policy.observation import batch_of_one, observation_sample

sim = pytest.importorskip("actionimages.sim")


def test_expert_scores_through_the_runner_deterministically(tmp_path):
    out = tmp_path / "expert"
    res = evaluate(
        PolicySpec("expert"), ["reach_target"], "heldout", episodes=4, seed=3, out=out, videos_per_task=1
    )
    e = res["tasks"]["reach_target"]
    assert e["episodes"] == 4 and e["success_rate"] == 1.0  # the scripted expert is a sanity policy
    assert e["ci95"][0] < 1.0 and e["ci95"][1] == 1.0
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["tasks"]["reach_target"]["success_rate"] == 1.0
    assert (out / "videos" / "reach_target_000.mp4").stat().st_size > 1000
    assert not (out / "videos" / "reach_target_001.mp4").exists()  # videos_per_task=1
    # Same seed -> same episodes (seeds and step counts); two workers do not change that.
    again = evaluate(
        PolicySpec("expert"), ["reach_target"], "heldout", episodes=4, seed=3, workers=2, progress=False
    )
    key = [(r["seed"], r["steps"], r["success"]) for r in res["episodes"]]
    assert key == [(r["seed"], r["steps"], r["success"]) for r in again["episodes"]]
    other = evaluate(PolicySpec("expert"), ["reach_target"], "heldout", episodes=4, seed=4, progress=False)
    assert [r["seed"] for r in other["episodes"]] != [r["seed"] for r in res["episodes"]]


def test_runner_rejects_bad_arguments():
    with pytest.raises(ActionImagesError, match="unknown task"):
        evaluate(PolicySpec("expert"), ["fly_to_moon"], "heldout", episodes=1)
    with pytest.raises(ActionImagesError, match="unknown split"):
        evaluate(PolicySpec("expert"), ["reach_target"], "nope", episodes=1)
    with pytest.raises(ActionImagesError, match="policy kind"):
        evaluate(PolicySpec("oracle"), ["reach_target"], "heldout", episodes=1)
    assert episode_seed(0, "a", "heldout", 1) == episode_seed(0, "a", "heldout", 1)


def test_observation_sample_matches_training_geometry():
    # The policy's input sample is built by the data SampleBuilder: frame 0's action images must
    # decode back to the current pose with the resized cameras (intrinsics updated consistently).
    from actionimages.codec import ActionImageCodec
    from actionimages.model.sampling import batch_cameras

    env = sim.make_env("reach_target", split="heldout", seed=1, image_size=96)
    obs, _ = env.reset(seed=1)
    env.close()
    s = observation_sample(obs, ["front", "left_shoulder"], 1, 64, 64)
    assert s["rgb"].shape == (2, 3, 1, 64, 64) and s["rgb"].abs().max() <= 1 + 1e-5
    assert s["plucker"].shape == (2, 6, 1, 64, 64) and s["K"].shape == (2, 1, 3, 3)
    assert s["K"][0, 0, 0, 0] == pytest.approx(obs["cameras"]["front"]["K"][0, 0] * 64 / 96, rel=1e-5)
    batch = batch_of_one(s)
    codec = ActionImageCodec(batch_cameras(batch, 0))
    imgs = ((s["action_images"] + 1) / 2).permute(0, 2, 3, 4, 1).numpy()  # (V, 1, H, W, 3)
    dec = codec.decode(imgs)
    assert dec.valid[0]
    assert np.linalg.norm(dec.actions[0, :3] - obs["ee_pose"][:3]) < 0.01
    with pytest.raises(ActionImagesError, match="not in the observation"):
        from actionimages.policy.observation import select_views

        select_views(obs, ["front", "nope"], 2)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from actionimages.model import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model"
    build_model("tiny").save_pretrained(str(path), safe_serialization=True)
    return path


def test_action_image_policy_executes_valid_prefix_or_holds(tiny_checkpoint):
    # An untrained model: whatever it generates, the policy must execute only decoded-valid frames
    # 1..k and otherwise hold the current pose, counting the invalid decode.
    policy = ActionImagePolicy.from_checkpoint(tiny_checkpoint, execute=2, num_steps=2)
    env = sim.make_env("reach_target", split="heldout", seed=5, image_size=64)
    obs, _ = env.reset(seed=5)
    policy.set_seed(5)
    policy.reset(obs)
    invalid_before = 0
    for _ in range(5):
        a = policy.act(obs)
        plan = policy.last_plan
        F = policy.cfg.num_frames
        assert plan is not None and plan["actions"].shape == (F, 7) and plan["valid"].shape == (F,)
        stats = policy.stats()
        if stats["invalid_decodes"] > invalid_before:  # a fresh invalid plan: hold
            np.testing.assert_allclose(a, obs["ee_pose"][:7])
            invalid_before = stats["invalid_decodes"]
        else:
            assert any(np.allclose(a, plan["actions"][j]) for j in (1, 2))
        assert policy.preview() is not None and set(policy.preview()) == {"front", "left_shoulder"}
        obs, *_ = env.step(a)
    env.close()
    stats = policy.stats()
    assert 1 <= stats["replans"] <= 5 and len(stats["latencies_s"]) == stats["replans"]
    with pytest.raises(ActionImagesError):
        ActionImagePolicy.from_checkpoint(tiny_checkpoint, execute=9)


@pytest.mark.parametrize("failure", ["nan_video", "codec_raises"])
def test_undecodable_plan_counts_as_a_decode_error_and_holds(failure, monkeypatch):
    # A plan whose action video the codec cannot decode at all must show in decode_errors (not
    # only as an invalid plan), whether the codec refuses the images or raises while decoding.
    from actionimages.codec import ActionImageCodec
    from actionimages.model import build_model

    class Undecodable(ActionImagePolicy):
        def action_video(self, obs, batch, seed):
            video = batch["action_images"].expand(-1, -1, -1, self.cfg.num_frames, -1, -1).clone()
            if failure == "nan_video":
                video[:, :, :, 1:] = float("nan")  # a diverged generation
            return video

    if failure == "codec_raises":

        def broken(self, images):
            raise RuntimeError("singular peak fit")

        monkeypatch.setattr(ActionImageCodec, "decode", broken)
    env = sim.make_env("reach_target", split="heldout", seed=2, image_size=64)
    obs, _ = env.reset(seed=2)
    env.close()
    policy = Undecodable(build_model("micro"), execute=1)
    policy.reset(obs)
    a = policy.act(obs)
    stats = policy.stats()
    assert stats["decode_errors"] == 1 and stats["invalid_decodes"] == 1 and stats["replans"] == 1
    needle = "NaN or inf" if failure == "nan_video" else "RuntimeError: singular peak fit"
    assert needle in stats["first_decode_error"]
    assert not policy.last_plan["valid"].any()
    np.testing.assert_allclose(a, obs["ee_pose"][:7])  # nothing decoded: hold the current pose


def test_action_image_policy_episode_with_video(tiny_checkpoint, tmp_path):
    policy = ActionImagePolicy.from_checkpoint(tiny_checkpoint, num_steps=2)
    r = run_episode(
        policy, "push_button", "heldout", seed=11, max_steps=4, image_size=64,
        video_path=tmp_path / "v.mp4", trajectory_path=tmp_path / "t.npz",
    )  # fmt: skip
    assert r.steps == 4 and not r.success and r.stats["replans"] >= 1
    with np.load(tmp_path / "t.npz") as z:
        assert z["ee_pose"].shape == (5, 7) and z["actions"].shape == (4, 7)
    assert (tmp_path / "v.mp4").stat().st_size > 500


def test_eval_cli_expert_and_errors(tmp_path, capsys):
    from actionimages.cli import main

    out = tmp_path / "cli"
    assert (
        main(["eval", "--policy", "expert", "--task", "reach_target", "--episodes", "2", "--out", str(out)])
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    assert set(res["tasks"]["reach_target"]) >= {"success_rate", "episodes", "ci95"}
    assert res["args"]["episodes"] == 2 and "95% CI" in capsys.readouterr().out
    assert main(["eval", "--policy", "expert", "--task", "nope", "--out", str(out)]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["eval", "--task", "reach_target", "--out", str(out)]) == 2  # no checkpoint, no expert
    for flag, value, named in (("--guidance", "nan", "--guidance"), ("--num-steps", "0", "--num-steps"),
                               ("--decode-tolerance", "0", "--decode-tolerance-px")):  # fmt: skip
        expert = ["eval", "--policy", "expert", "--task", "reach_target", "--out", str(out)]
        assert main([*expert, flag, value]) == 2
        assert f"({named}) must be" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"guidance": float("nan")}, "guidance"),
        ({"guidance": -1.0}, "guidance"),
        ({"num_steps": 0}, "num_steps"),
        ({"decode_tolerance_px": 0.0}, "decode_tolerance_px"),
        ({"decode_tolerance_px": float("nan")}, "decode_tolerance_px"),
    ],
)
def test_action_image_policy_rejects_bad_options(options, needle):
    from actionimages.model import build_model

    with pytest.raises(ActionImagesError, match=needle):
        ActionImagePolicy(build_model("micro"), **options)


# ------------------------------------------------------------------ interface, executor, registry
def test_chunk_executor_runs_the_valid_prefix_and_holds_on_an_unusable_plan():
    from actionimages.policy.chunking import ChunkExecutor

    ex = ChunkExecutor(execute=3, horizon=4, repeat=2)
    poses = np.arange(28, dtype=float).reshape(4, 7)
    assert ex.load(poses, np.array([True, True, False, True]), np.zeros(7), tags=[1, 2, 3, 4])
    got = [ex.pop() for _ in range(4)]  # 2 valid poses × repeat 2; the invalid third ends the prefix
    assert [t for _, t in got] == [1, 1, 2, 2] and ex.empty
    np.testing.assert_array_equal(got[2][0][[0, 1, 2, 6]], poses[1][[0, 1, 2, 6]])
    turns = (got[2][0][3:6] - poses[1][3:6]) / (2 * np.pi)  # Euler angles unwrapped: whole turns apart
    np.testing.assert_allclose(turns, np.round(turns), atol=1e-12)
    bad = poses.copy()
    bad[0, 2] = np.nan
    current = np.full(8, 0.5)
    assert not ex.load(bad, np.ones(4, bool), current)  # non-finite first pose: hold, replan next step
    target, tag = ex.pop()
    assert tag is None and target.shape == (7,) and ex.empty
    held = np.angle(np.exp(1j * target[3:6]))  # the current pose, its angles continuous with the last
    assert np.all(target[[0, 1, 2, 6]] == 0.5) and np.allclose(held, 0.5)
    with pytest.raises(ValueError, match="poses \\(N, 7\\)"):
        ex.load(np.zeros((4, 6)), np.ones(4, bool), current)
    with pytest.raises(ValueError, match="execute"):
        ChunkExecutor(execute=5, horizon=4)
    with pytest.raises(ValueError, match="empty"):
        ex.pop()


def test_policy_registry_walk():
    """Every registered kind is complete, the CLI offers exactly the CLI kinds, baseline kinds build
    their networks, and kinds that need a checkpoint say so."""
    from actionimages.cli import build_parser
    from actionimages.policy.base import Policy
    from actionimages.policy.registry import POLICIES, baseline_kinds, build_policy, cli_kinds

    assert {"expert", "action_images", "bc", "lowdim", "oracle_codec", "oracle_autoencoder"} <= set(POLICIES)
    for name, kind in POLICIES.items():
        assert kind.name == name and kind.help and callable(kind.build)
        if kind.needs_checkpoint:
            with pytest.raises(ActionImagesError, match="needs a checkpoint"):
                build_policy(name)
    assert isinstance(build_policy("expert"), Policy)
    assert set(baseline_kinds()) == {"bc", "lowdim"}
    from actionimages.policy.baseline.train import build_net

    assert isinstance(build_net("bc", {"num_views": 2, "horizon": 8}), torch.nn.Module)
    with pytest.raises(ActionImagesError, match="unknown baseline kind"):
        build_net("expert", {})
    with pytest.raises(ActionImagesError, match="unknown policy kind"):
        build_policy("nope")
    sub = build_parser()._subparsers._group_actions[0].choices["eval"]
    choices = next(a.choices for a in sub._actions if a.dest == "policy")
    assert tuple(choices) == cli_kinds() and "oracle_codec" not in choices


def test_runner_refuses_an_object_that_is_not_a_policy():
    class Duck:
        def reset(self, obs):
            pass

        def act(self, obs):
            return np.zeros(7)

    with pytest.raises(ActionImagesError, match="subclass actionimages.policy.Policy"):
        run_episode(Duck(), "reach_target", "train", seed=0, max_steps=1, image_size=32)


def test_runner_records_how_near_each_episode_came_to_the_instructed_object():
    """closest_m / final_m per episode, and the failures' medians per task (issue 22's measure)."""
    from actionimages.eval.runner import summarize
    from actionimages.policy import ExpertPolicy, Policy

    class Stay(Policy):  # holds the start pose: fails, as near as it started
        def reset(self, obs):
            self.pose = np.asarray(obs["ee_pose"], dtype=np.float64)[:7]

        def act(self, obs):
            return self.pose

    ok = run_episode(ExpertPolicy(), "reach_target_single", "train", seed=3, image_size=64)
    assert ok.success and ok.stats["closest_m"] < 0.03 and ok.stats["final_m"] == ok.stats["closest_m"]
    stay = run_episode(Stay(), "reach_target_single", "train", seed=3, max_steps=3, image_size=64)
    assert not stay.success and stay.stats["closest_m"] > 0.05
    assert stay.stats["final_m"] == pytest.approx(stay.stats["closest_m"], abs=0.02)
    entry = summarize([ok, stay])["reach_target_single"]
    assert entry["failures_closest_median_m"] == stay.stats["closest_m"]  # failures only
    # push_button's target is a table position (x, y): lifted to the button's height (Task.object_z)
    button = run_episode(ExpertPolicy(), "push_button", "train", seed=0, image_size=64)
    assert button.success and button.stats["closest_m"] < 0.05
    drawer = run_episode(ExpertPolicy(), "close_drawer", "train", seed=0, max_steps=1, image_size=64)
    assert "closest_m" not in drawer.stats  # the drawer tasks name a drawer, not a point


def test_every_registered_kind_lives_in_its_own_folder_recognises_its_checkpoints_and_acts(tmp_path):
    """The registry walk: each kind is a folder under policy/ that registers itself; the shipped
    checkpoints are recognised by their own kind, load and act one step in the sim; a new kind is
    one decorator; a folder of no kind is a clear error."""
    from pathlib import Path

    import actionimages.policy as policy_pkg
    from actionimages.policy import ExpertPolicy
    from actionimages.policy.registry import POLICIES, build_policy, detect_kind, policy_kind

    root = Path(policy_pkg.__file__).parent
    for name, kind in POLICIES.items():
        module = kind.build.__module__
        assert module.startswith("actionimages.policy.") and (root / module.split(".")[2]).is_dir(), name
    shipped = {"action_images": "checkpoints/tiny", "bc": "checkpoints/bc", "lowdim": "checkpoints/lowdim"}
    repo = Path(__file__).resolve().parents[1]
    from actionimages.sim import make_env

    env = make_env("reach_target", split="test", seed=0, image_size=64)
    try:
        obs, _ = env.reset(seed=0)
        for name, ckpt in [*shipped.items(), ("expert", None)]:
            if ckpt is not None:
                assert detect_kind(repo / ckpt) == name
            pol = build_policy(name, None if ckpt is None else str(repo / ckpt))
            pol.attach(env)
            pol.set_seed(0)
            pol.reset(obs)
            action = np.asarray(pol.act(obs))
            assert action.shape in ((7,), (8,)) and np.isfinite(action).all(), name
    finally:
        env.close()

    @policy_kind("hold_still", recognises=lambda p: (p / "hold.txt").is_file(), help="test kind")
    def build(checkpoint, options):
        return ExpertPolicy()

    try:
        (tmp_path / "hold.txt").write_text("x")
        assert detect_kind(tmp_path) == "hold_still"
        assert isinstance(build_policy("hold_still", str(tmp_path)), ExpertPolicy)
    finally:
        POLICIES.pop("hold_still")
    (tmp_path / "hold.txt").unlink()
    with pytest.raises(ActionImagesError, match="not a checkpoint of any policy kind"):
        detect_kind(tmp_path)


def test_planning_flags_are_generated_from_the_planning_config():
    """eval, serve and ladder take one flag per PlanningConfig field, under the field's own name
    (--decode-tolerance stays as an alias), and the flags give back the same config."""
    import argparse
    import dataclasses

    from actionimages.cli.policy_args import add_planning_flags, planning_options
    from actionimages.policy.action_images.configuration import PlanningConfig

    parser = argparse.ArgumentParser()
    add_planning_flags(parser)
    flags = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(PlanningConfig):
        assert "--" + f.name.replace("_", "-") in flags, f.name
    args = parser.parse_args(["--num-steps", "4", "--decode-tolerance", "2.5", "--execute", "3"])
    assert planning_options(args) == {"execute": 3, "num_steps": 4, "guidance": 1.0, "mode": "joint",
                                      "decode_tolerance_px": 2.5}  # fmt: skip
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "video"])  # choices come from the config too
