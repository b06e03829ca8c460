"""The oracle ladder (expert's future as action images) and the perception checks, on the real sim."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from actionimages.errors import ActionImagesError
from actionimages.eval.runner import episode_seed, run_episode

sim = pytest.importorskip("actionimages.sim")

TINY = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny"
SPLIT = "test" if "test" in sim.SPLITS else "train"  # the held-out test split, once the sim has it


@pytest.fixture(scope="module")
def tiny_model():
    if not (TINY / "config.json").is_file():
        pytest.skip("the shipped checkpoints/tiny is missing")
    from actionimages.model import load_model

    return load_model(TINY)


def test_look_ahead_rewinds_exactly_and_sees_the_true_future():
    from actionimages.policy.action_images.oracle import expert_future, expert_state

    # pick_up_cube: free-floating cubes and contacts, the hardest state to rewind
    task, seed, frames, repeat = "pick_up_cube", 7, 5, 2
    env, ref = (sim.make_env(task, split="train", seed=seed, render=False) for _ in range(2))
    try:
        obs, _ = env.reset(seed=seed)
        ref_obs, _ = ref.reset(seed=seed)
        ex, ref_ex = sim.scripted_expert(env), sim.scripted_expert(ref)
        for _ in range(6):
            obs, *_ = env.step(ex.act(obs))
            ref_obs, *_ = ref.step(ref_ex.act(ref_obs))
        qpos, qvel, before = env.data.qpos.copy(), env.data.qvel.copy(), expert_state(ex)
        poses, states = expert_future(env, ex, frames, repeat)
        assert poses.shape == (frames - 1, 7) and len(states) == (frames - 1) * repeat + 1
        # bit-identical rewind of the sim and of the expert
        assert np.array_equal(env.data.qpos, qpos) and np.array_equal(env.data.qvel, qvel)
        assert env.steps == ref.steps
        assert ex.index == before["index"] and np.array_equal(ex.cmd_pos, before["cmd_pos"])
        # ... and the rollout continues exactly as one that never looked ahead
        seen = []
        for t in range(1, 13):
            a, ref_a = ex.act(obs), ref_ex.act(ref_obs)
            obs, *_ = env.step(a)
            ref_obs, *_ = ref.step(ref_a)
            assert np.array_equal(a, ref_a)
            assert np.array_equal(env.data.qpos, ref.data.qpos) and np.array_equal(
                env.data.qvel, ref.data.qvel
            )
            if t % repeat == 0 and len(seen) < frames - 1:
                seen.append(np.concatenate([obs["ee_pose"][:6], [a[6]]]))  # measured pose + command
        # the look-ahead recorded that very future, as demonstrations record actions
        assert np.array_equal(np.stack(seen), poses)
    finally:
        env.close()
        ref.close()
    with pytest.raises(ActionImagesError, match="frames >= 2"):
        expert_future(env, ex, 1)


def test_codec_rung_succeeds_on_reach_target(tiny_model):
    from actionimages.policy.action_images.oracle import OracleActionImagePolicy

    policy = OracleActionImagePolicy(tiny_model)
    for i in range(2):
        s = episode_seed(0, "reach_target", SPLIT, i)
        r = run_episode(policy, "reach_target", SPLIT, s, i, image_size=64)
        assert r.success, r
        assert r.stats["invalid_decodes"] == 0 and r.stats["replans"] >= 1
        # the codec is near-exact: decoded plans sit on the drawn expert poses
        assert np.median(r.stats["plan_error_mm"]) < 5.0
    plan = policy.last_plan
    assert plan is not None and plan["truth"].shape == (tiny_model.spec.num_frames, 7)
    with pytest.raises(ActionImagesError, match="attach"):
        OracleActionImagePolicy(tiny_model).reset({})


def test_codec_rung_follows_the_target(tiny_model):
    from actionimages.eval.ladder import target_following
    from actionimages.policy.action_images.oracle import OracleActionImagePolicy

    r = target_following(
        OracleActionImagePolicy(tiny_model), split=SPLIT, scenes=2, image_size=64, progress=False
    )
    assert r["pairs"] == r["pairs_total"] == 8 and r["decoded_plans"] == r["plans"] == 10
    assert r["slope"] > 0.8 and r["executed"]["slope"] > 0.8
    assert all(v > 0.8 for v in r["slope_per_offset"].values())
    # an exact follower moves its plan end as far as the reference follower does
    assert r["mean_plan_displacement_mm"] == pytest.approx(r["mean_follower_displacement_mm"], rel=0.2)


def test_autoencoder_objects_check(tiny_model, tmp_path):
    from actionimages.eval.ladder import autoencoder_objects, object_points

    png = tmp_path / "ae.png"
    r = autoencoder_objects(
        tiny_model, ["reach_target"], split=SPLIT, scenes=1, image_size=64, png=png, progress=False
    )
    e = r["tasks"]["reach_target"]
    assert e["measurements"] >= 2  # three spheres, two views, most of them in sight
    for key in ("median_error", "median_error_primary", "median_contrast", "median_image_error"):
        assert math.isfinite(e[key]) and 0 <= e[key] <= 765
    assert 0 <= e["nearer_object_fraction"] <= 1
    assert png.stat().st_size > 1000
    assert object_points("push_button", [np.array([0.5, 0.1])])[0, 2] > 0
    with pytest.raises(ActionImagesError, match="unknown split"):
        autoencoder_objects(tiny_model, ["reach_target"], split="nope")


def test_ladder_cli_end_to_end(tmp_path, capsys):
    from actionimages.cli import main

    if not (TINY / "config.json").is_file():
        pytest.skip("the shipped checkpoints/tiny is missing")
    out = tmp_path / "ladder"
    argv = ["ladder", "--checkpoint", str(TINY), "--task", "reach_target", "--split", SPLIT]
    argv += ["--episodes", "1", "--out", str(out), "--image-size", "64", "--num-steps", "2"]
    argv += ["--perception-scenes", "1", "--follow-scenes", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| rung | reach_target |" in printed and "direction slope" in printed
    lad = json.loads((out / "ladder.json").read_text())
    assert list(lad["rungs"]) == ["expert", "codec", "autoencoder", "model"]
    for rung, per_task in lad["rungs"].items():
        e = per_task["reach_target"]
        assert e["episodes"] == 1 and len(e["ci95"]) == 2, rung
    assert lad["rungs"]["expert"]["reach_target"]["successes"] == 1
    assert lad["rungs"]["codec"]["reach_target"]["successes"] == 1
    assert (out / "rungs" / "model" / "results.json").is_file()
    per = json.loads((out / "perception.json").read_text())
    assert set(per["target_following"]) == {"codec (expert oracle)", "model"}
    assert per["autoencoder_objects"]["tasks"]["reach_target"]["measurements"] > 0
    assert (out / "perception_autoencoder.png").is_file()

    # bad input: one clear line, exit code 2
    base = ["ladder", "--task", "reach_target", "--split", SPLIT, "--out", str(tmp_path / "x")]
    assert main([*base, "--checkpoint", str(TINY), "--rungs", "expert,oracle"]) == 2
    assert "unknown rung" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*base, "--rungs", "codec"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(TINY), "--task", "fly"]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_what_the_evaluation_knows_of_a_task_comes_from_the_task():
    """Object heights and the following check's body are task attributes, so a new task states them
    in its own file (a new task without them gets the table's height and no following check)."""
    from actionimages.eval.ladder import follow_tasks
    from actionimages.sim.tasks import TASK_CLASSES, make_task

    assert set(follow_tasks()) == {"reach_target", "reach_target_single"}
    assert make_task("reach_target_single").follow_body == "sphere0"
    for name, cls in TASK_CLASSES.items():
        if name not in ("reach_target", "reach_target_single"):
            assert cls.object_z > 0, name  # every listed (x, y) object has a height
    assert make_task("push_button").world_point([0.5, 0.1]).tolist() == [0.5, 0.1, 0.038]
    assert make_task("reach_target").world_point([0.4, 0.0, 0.2]).tolist() == [0.4, 0.0, 0.2]
