"""The embedded MuJoCo benchmark: API, bad input, control, experts, calibration, splits, rendering."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from actionimages.codec import as_camera
from actionimages.codec.poses import euler_to_quat
from actionimages.errors import ActionImagesError
from actionimages.sim import ALL_CAMERAS, GYM_IDS, SPLITS, TASKS, gym_id, make_env, scripted_expert
from actionimages.sim.env import MAX_STEP_M
from actionimages.sim.tasks import HOME_TCP, TASK_CLASSES, Task, register_task
from actionimages.sim.variations import (
    HELDOUT_COLOURS,
    HELDOUT_DISTRACTORS,
    HELDOUT_Y,
    TRAIN_COLOURS,
    TRAIN_DISTRACTORS,
    TRAIN_Y,
)


def run_expert(env, seed: int) -> dict:
    expert = scripted_expert(env)
    obs, info = env.reset(seed=seed)
    for _ in range(env.max_steps):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    return info


# ------------------------------------------------------------------------------------------ API
def test_names_exported():
    assert set(TASKS) == {
        "reach_target_single",
        "reach_target",
        "push_button",
        "close_drawer",
        "open_drawer",
        "pick_up_cube",
        "stack_blocks",
    }
    assert SPLITS == ("train", "test", "heldout", "heldout_cameras")
    names = ["ReachTarget", "PushButton", "CloseDrawer", "OpenDrawer", "PickUpCube", "StackBlocks"]
    assert GYM_IDS == tuple(f"actionimages/{n}-v0" for n in [*names, "ReachTargetSingle"])  # TASKS' order


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"task": "fly_to_moon"}, "reach_target"),
        ({"task": "reach_target", "split": "validation"}, "heldout_cameras"),
        ({"task": "reach_target", "image_size": 32}, "64"),
        ({"task": "reach_target", "image_size": 1024}, "512"),
        ({"task": "reach_target", "cameras": ["front", "ceiling"]}, "overhead"),
    ],
)
def test_bad_construction_names_valid_values(kwargs, needle):
    with pytest.raises(ActionImagesError, match=needle):
        make_env(**kwargs)


def test_reset_step_contract_and_truncation():
    env = make_env("reach_target", image_size=64, cameras=["front", "wrist"])
    obs, info = env.reset(seed=4)
    assert set(obs) == {"images", "cameras", "ee_pose", "instruction"}
    assert set(obs["images"]) == {"front", "wrist"} == set(obs["cameras"])
    assert obs["images"]["front"].shape == (64, 64, 3) and obs["images"]["front"].dtype == np.uint8
    assert obs["ee_pose"].shape == (7,)
    np.testing.assert_allclose(obs["ee_pose"][:3], HOME_TCP, atol=5e-3)
    assert obs["ee_pose"][6] > 0.95  # starts open
    assert isinstance(obs["instruction"], str) and info["colour"] in obs["instruction"]
    hold = env.home_action()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # holding still: no clipping, no IK warnings
        for k in range(env.max_steps):
            obs, reward, terminated, truncated, info = env.step(hold)
            assert reward == 0.0 and not terminated
            assert truncated == (k == env.max_steps - 1)
    assert info["step"] == env.max_steps and not info["success"]
    env.close()
    env.close()  # twice is fine


def test_step_before_reset_and_bad_actions():
    env = make_env("push_button", render=False)
    with pytest.raises(ActionImagesError, match="reset"):
        env.step(env.home_action())
    env.reset(seed=0)
    a = env.home_action()
    bad = a.copy()
    bad[2] = np.nan
    with pytest.raises(ActionImagesError, match="NaN"):
        env.step(bad)
    with pytest.raises(ActionImagesError, match="7"):
        env.step(a[:5])
    with pytest.raises(ActionImagesError):
        env.step(np.stack([a, a]))
    with pytest.raises(ActionImagesError, match="quaternion"):
        env.step(np.concatenate([a[:3], [0.0, 0.0, 0.0, 3.0], [1.0]]))


def test_quaternion_action_equals_euler_action():
    env = make_env("reach_target", render=False)
    target = env.home_action()
    target[:3] += [0.03, -0.02, 0.01]
    target[3:6] += [0.0, 0.1, 0.2]
    results = []
    for a in (target, np.concatenate([target[:3], euler_to_quat(target[3:6]), target[6:]])):
        env.reset(seed=1)
        obs, *_ = env.step(a)
        results.append(obs["ee_pose"])
    np.testing.assert_allclose(results[0], results[1], atol=1e-9)


def test_clipping_is_warned_and_reported():
    env = make_env("reach_target", render=False)
    env.reset(seed=0)
    a = env.home_action()
    a[2] = -0.2  # below the table
    with pytest.warns(RuntimeWarning, match="clipped"):
        obs, _, _, _, info = env.step(a)
    assert info["clipped"] is True
    assert obs["ee_pose"][2] > 0.02  # the tool stayed above the table
    obs, _, _, _, info = env.step(env.home_action())
    assert info["clipped"] is False


def test_ik_failure_is_reported_not_silent():
    env = make_env("reach_target", render=False)
    env.reset(seed=0)
    far = env.home_action()
    far[:3] = [0.85, 0.5, 0.7]  # inside the workspace box, beyond the arm's reach
    with pytest.warns(RuntimeWarning, match="IK"):
        _, _, _, _, info = env.step(far)
    assert info["ik_failed"] is True and info["ik_error"] > 0.05
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.home_action())
    assert info["ik_failed"] is False and info["ik_error"] < 1e-3


def test_targets_within_max_step_are_tracked_tightly():
    env = make_env("reach_target", render=False)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    pose = env.home_action()
    errors, rot_errors = [], []
    for _ in range(25):
        d = rng.normal(size=3)
        pose[:3] = np.clip(
            pose[:3] + d / np.linalg.norm(d) * 0.8 * MAX_STEP_M, [0.3, -0.2, 0.1], [0.6, 0.2, 0.4]
        )
        pose[3:6] = env.home_action()[3:6] + rng.normal(size=3) * 0.05
        _, _, _, _, info = env.step(pose)
        errors.append(info["tracking_error"])
        rot_errors.append(info["tracking_rot_error"])
    assert np.mean(errors) < 0.003 and np.max(errors) < 0.006
    assert np.max(rot_errors) < np.deg2rad(1.5)


def test_reset_is_deterministic_per_seed():
    env = make_env("pick_up_cube", render=False)
    a, _ = env.reset(seed=11)
    pos_a = env.data.xpos[env.body_id("cube0")].copy()
    env.reset(seed=12)
    b, _ = env.reset(seed=11)
    assert a["instruction"] == b["instruction"]
    np.testing.assert_allclose(env.data.xpos[env.body_id("cube0")], pos_a)
    # without a seed, episodes count up from make_env's seed
    env2 = make_env("pick_up_cube", seed=11, render=False)
    c, info = env2.reset()
    assert info["seed"] == 11 and c["instruction"] == a["instruction"]
    assert env2.reset()[1]["seed"] == 12


# ------------------------------------------------------------------------------------ registry
@pytest.mark.parametrize("name", list(TASK_CLASSES))
def test_every_registered_task_builds_resets_and_its_expert_solves_it(name):
    cls = TASK_CLASSES[name]
    assert issubclass(cls, Task) and cls.name == name and name in TASKS
    for split in SPLITS:
        env = make_env(name, split=split, seed=0, image_size=64, render=False)
        try:
            obs, info = env.reset(seed=0)
            assert type(env.task) is cls and (info["task"], info["split"]) == (name, split)
            assert obs["instruction"].strip() and obs["instruction"] == env.task_state.instruction
            assert len(env.task_state.objects) >= 1  # the instructed object first
            if split == "train":
                info = run_expert(env, 0)
                assert info["success"], f"{name} expert failed on train seed 0"
                assert info["step"] <= env.max_steps == cls.max_steps
        finally:
            env.close()


def test_registry_lists_tasks_in_import_order_and_refuses_bad_classes():
    assert TASKS == tuple(TASK_CLASSES)

    class Nameless(Task):
        pass

    class Impostor(Task):
        name = "reach_target"

    with pytest.raises(ActionImagesError, match="no name"):
        register_task(Nameless)
    with pytest.raises(ActionImagesError, match="reach_target.*taken"):
        register_task(Impostor)
    with pytest.raises(ActionImagesError, match="Task subclass"):
        register_task(dict)
    assert TASKS == tuple(TASK_CLASSES) and TASK_CLASSES["reach_target"].__name__ == "ReachTarget"


# ------------------------------------------------------------------------------------ experts
@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds_and_holding_still_fails(task):
    env = make_env(task, render=False)
    for seed in (0, 1, 2):
        info = run_expert(env, seed)
        assert info["success"], f"{task} expert failed on seed {seed}"
        assert info["step"] < env.max_steps
    for seed in (0, 1, 2):
        env.reset(seed=seed)
        for _ in range(env.max_steps):
            *_, terminated, truncated, info = env.step(env.home_action())
            if terminated or truncated:
                break
        assert not info["success"], f"holding the home pose solved {task} seed {seed}"


@pytest.mark.parametrize("task", ["push_button", "open_drawer"])
def test_expert_succeeds_on_heldout(task):
    env = make_env(task, split="heldout", render=False)
    assert run_expert(env, 3)["success"]


# -------------------------------------------------------------------------------- calibration
@pytest.mark.parametrize("split", ["train", "heldout_cameras"])
def test_camera_calibration_projects_within_a_pixel(split):
    """Project each target sphere's centre with the returned Camera; compare with the centroid of the
    sphere's pixels in a segmentation render (only where the sphere lies wholly inside the image)."""
    env = make_env("reach_target", split=split, image_size=128, cameras=ALL_CAMERAS, render=False)
    checked = 0
    for seed in (1, 2):
        obs, _ = env.reset(seed=seed)
        seg = {c: env.renderer.render_geom_ids(env.data, c) for c in ALL_CAMERAS}
        for i in range(3):
            gid = int(np.flatnonzero(env.model.geom_bodyid == env.body_id(f"sphere{i}"))[0])
            centre = env.data.geom_xpos[gid]
            for name, cam in obs["cameras"].items():
                cam = as_camera(cam)
                mask = seg[name] == gid
                if (
                    mask.sum() < 15
                    or mask[0].any()
                    or mask[-1].any()
                    or mask[:, 0].any()
                    or mask[:, -1].any()
                ):
                    continue
                vs, us = np.nonzero(mask)
                uv, depth = cam.project(centre)
                assert depth > 0
                r_px = cam.K[0, 0] * env.model.geom_size[gid][0] / depth
                if mask.sum() < 0.85 * np.pi * r_px**2:  # partly hidden (by the arm): centroid is biased
                    continue
                err = np.hypot(us.mean() - uv[0], vs.mean() - uv[1])
                assert err < 1.0, f"{split} {name}: centroid off projection by {err:.2f} px"
                checked += 1
    assert checked >= 10
    env.close()


def test_wrist_camera_moves_with_the_hand():
    env = make_env("reach_target", image_size=64, cameras=["wrist", "front"])
    obs0, _ = env.reset(seed=0)
    a = env.home_action()
    a[:3] += [0.04, 0.0, -0.03]
    obs1, *_ = env.step(a)
    cams0, cams1 = ({k: as_camera(c) for k, c in o["cameras"].items()} for o in (obs0, obs1))
    moved = cams1["wrist"].center - cams0["wrist"].center
    np.testing.assert_allclose(moved, obs1["ee_pose"][:3] - obs0["ee_pose"][:3], atol=2e-3)
    np.testing.assert_allclose(cams1["front"].cam_to_world, cams0["front"].cam_to_world)
    assert not np.array_equal(obs0["images"]["wrist"], obs1["images"]["wrist"])
    env.close()


# ------------------------------------------------------------------------------------- splits
def test_heldout_split_differs_from_train():
    train_colours, held_colours = set(), set()
    train_kinds, held_kinds = set(), set()
    for split, colours, kinds in (
        ("train", train_colours, train_kinds),
        ("heldout", held_colours, held_kinds),
    ):
        env = make_env("pick_up_cube", split=split, render=False)
        for seed in range(8):
            obs, info = env.reset(seed=seed)
            colours.add(info["colour"])
            kinds.update(info["distractors"])
            y = env.data.xpos[env.body_id("cube0")][1]
            lo, hi = TRAIN_Y if split == "train" else HELDOUT_Y
            assert lo - 1e-6 <= y <= hi + 1e-6
            assert info["colour"] in obs["instruction"]
    assert train_colours <= set(TRAIN_COLOURS) and held_colours <= set(HELDOUT_COLOURS)
    assert not set(TRAIN_COLOURS) & set(HELDOUT_COLOURS)
    assert train_kinds <= set(TRAIN_DISTRACTORS) and held_kinds <= set(HELDOUT_DISTRACTORS)
    assert held_kinds  # heldout always shows unseen distractors
    assert TRAIN_Y[1] < HELDOUT_Y[0]  # disjoint regions


def test_heldout_cameras_move_only_the_cameras():
    train = make_env("open_drawer", split="test", render=False)
    novel = make_env("open_drawer", split="heldout_cameras", render=False)
    held = make_env("open_drawer", split="heldout", render=False)
    for seed in (0, 1):
        a, ia = train.reset(seed=seed)
        b, ib = novel.reset(seed=seed)
        c, _ = held.reset(seed=seed)
        assert a["instruction"] == b["instruction"] and ia["colour"] == ib["colour"]
        np.testing.assert_allclose(train.model.body_pos, novel.model.body_pos)
        for name in ("front", "left_shoulder", "right_shoulder", "overhead"):
            ta, tb = a["cameras"][name]["cam_to_world"], b["cameras"][name]["cam_to_world"]
            assert np.linalg.norm(ta[:3, 3] - tb[:3, 3]) > 0.1, name  # placements far from train's
            np.testing.assert_allclose(ta, c["cameras"][name]["cam_to_world"])  # heldout keeps train cameras


def test_rendering_headless_images_show_the_scene():
    env = make_env("stack_blocks", image_size=96, cameras=["front", "overhead"])
    obs, _ = env.reset(seed=0)
    for name, img in obs["images"].items():
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8
        assert img.std() > 10, f"{name} image is nearly uniform"
    assert not np.array_equal(obs["images"]["front"], obs["images"]["overhead"])
    again = env.render_images()
    np.testing.assert_array_equal(again["front"], obs["images"]["front"])  # rendering is deterministic
    assert env.render().shape == (96, 96, 3)
    env.close()


def _scene_key(env) -> tuple:
    return tuple(np.round(env.model.body_pos.ravel(), 6)) + tuple(np.round(env.model.geom_rgba.ravel(), 4))


@pytest.mark.parametrize("task", ["reach_target", "pick_up_cube"])
def test_test_split_is_the_train_distribution_on_scenes_train_never_shows(task):
    train, test = make_env(task, split="train", render=False), make_env(task, split="test", render=False)
    train_scenes = set()
    for seed in range(40):
        train.reset(seed=seed)
        train_scenes.add(_scene_key(train))
    for seed in range(40):  # the same seed numbers give other scenes, from the same variation
        _, info = test.reset(seed=seed)
        assert _scene_key(test) not in train_scenes
        assert info["colour"] in TRAIN_COLOURS and set(info["distractors"]) <= set(TRAIN_DISTRACTORS)
    assert test.variation.y_range == train.variation.y_range


def test_scene_seeds_derive_from_names_not_list_positions():
    from actionimages.sim.variations import scene_stream

    a = scene_stream("reach_target", "train", 3).uniform(size=4)
    np.testing.assert_array_equal(a, scene_stream("reach_target", "train", 3).uniform(size=4))
    assert not np.allclose(a, scene_stream("push_button", "train", 3).uniform(size=4))
    assert not np.allclose(a, scene_stream("reach_target", "test", 3).uniform(size=4))
    # heldout_cameras shows test's scenes (only the cameras differ)
    np.testing.assert_array_equal(
        scene_stream("reach_target", "heldout_cameras", 3).uniform(size=4),
        scene_stream("reach_target", "test", 3).uniform(size=4),
    )
    with pytest.raises(ActionImagesError, match="non-negative"):
        scene_stream("reach_target", "train", -1)


@pytest.mark.parametrize("task", ["reach_target", "push_button", "pick_up_cube", "close_drawer"])
def test_the_named_colour_is_unique_in_the_scene(task):
    for split in ("train", "heldout"):
        env = make_env(task, split=split, render=False)
        named_rgb = None
        for seed in range(25):
            _, info = env.reset(seed=seed)
            named_rgb = np.array(env.variation.colours[info["colour"]])
            m = env.model
            for kind in info["distractors"]:
                bid = env.body_id(f"clutter_{kind}")
                for g in range(m.ngeom):
                    if m.geom_bodyid[g] == bid:
                        assert not np.allclose(m.geom_rgba[g][:3], named_rgb), (task, split, seed, kind)
        assert named_rgb is not None


def test_reach_target_single_is_reach_target_without_distractors():
    env = make_env("reach_target_single", split="train", render=False)
    for seed in range(6):
        _, info = env.reset(seed=seed)
        assert info["distractors"] == [] and len(env.task_state.objects) == 1
        for i in (1, 2):  # the other spheres are parked out of view
            assert env.model.body_pos[env.body_id(f"sphere{i}")][2] < 0
        assert env.model.body_pos[env.body_id("sphere0")][2] > 0
    expert = scripted_expert(env)
    obs, _ = env.reset(seed=0)
    for _ in range(env.max_steps):
        obs, _, _, _, info = env.step(expert.act(obs))
        if info["success"]:
            break
    assert info["success"]


# ------------------------------------------------------------------------ gymnasium conformance
def _gymnasium_warnings(caught) -> list[str]:
    """gymnasium's checker warnings (``WARN: ...``) other than its advice to normalise the action
    space to [-1, 1]: ours is absolute poses in metres and radians, the benchmark's interface."""
    said = [str(w.message) for w in caught if "WARN:" in str(w.message)]
    return [m for m in said if "symmetric and normalized space" not in m]


@pytest.mark.parametrize("task", list(TASK_CLASSES))
def test_every_task_is_a_registered_gymnasium_env_that_passes_check_env(task):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    assert gym_id(task) in gym.registry  # registered on import of actionimages.sim
    env = gym.make(gym_id(task), image_size=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)  # with a spec: also the rgb_array render mode and determinism
    assert _gymnasium_warnings(caught) == []
    assert env.unwrapped.task_name == task
    env.close()


@pytest.mark.parametrize(
    "kwargs", [{"render": False}, {"cameras": ["front", "wrist"]}, {"split": "heldout_cameras"}]
)
def test_check_env_passes_without_images_with_the_wrist_camera_and_on_other_splits(kwargs):
    from gymnasium.utils.env_checker import check_env

    env = make_env("push_button", image_size=64, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    assert _gymnasium_warnings(caught) == []
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    if kwargs.get("render") is False:
        assert "images" not in obs and "images" not in env.observation_space.spaces
    else:
        assert set(obs["images"]) == set(env.camera_names)


def test_calibration_in_the_observation_gives_the_cameras():
    """``obs["cameras"]`` holds plain arrays (``K``, ``cam_to_world``, ``width``, ``height``);
    ``as_camera`` turns each into the :class:`Camera` the env's ``cameras()`` returns."""
    from actionimages.codec import Camera, as_camera

    env = make_env("reach_target", image_size=64, cameras=["front", "wrist"], render=False)
    obs, _ = env.reset(seed=3)
    for name, cam in env.cameras().items():
        got = as_camera(obs["cameras"][name])
        assert isinstance(got, Camera) and (got.width, got.height) == (64, 64)
        np.testing.assert_array_equal(got.K, cam.K)
        np.testing.assert_array_equal(got.cam_to_world, cam.cam_to_world)
        assert as_camera(cam) is cam
    with pytest.raises(ActionImagesError, match="missing"):
        as_camera({"K": np.eye(3)})
    with pytest.raises(ActionImagesError, match="calibration"):
        as_camera("front")


def test_every_instruction_fits_the_text_space():
    from actionimages.sim.tasks.drawer import DRAWER_NAMES

    env = make_env("reach_target", render=False)
    space = env.observation_space["instruction"]
    for cls in TASK_CLASSES.values():
        for template in cls.instructions:
            for name in (*TRAIN_COLOURS, *HELDOUT_COLOURS, *DRAWER_NAMES):
                text = template.format(c=name, w=name)
                assert space.contains(text), text
    for split in SPLITS:  # and what reset draws
        env = make_env("stack_blocks", split=split, render=False)
        for seed in range(3):
            assert env.reset(seed=seed)[0]["instruction"] in space


def test_render_mode_rgb_array_returns_a_frame_and_others_are_refused():
    env = make_env("close_drawer", image_size=64, render=False, render_mode="rgb_array")
    assert env.render_mode == "rgb_array"
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 5
    with pytest.raises(ActionImagesError, match="rgb_array"):
        make_env("close_drawer", render_mode="human")


def test_vector_env_steps_and_batches_the_observation():
    import gymnasium as gym

    envs = gym.make_vec(
        "actionimages/ReachTarget-v0", num_envs=2, vectorization_mode="sync", image_size=64, cameras="front"
    )
    obs, info = envs.reset(seed=5)
    assert obs["images"]["front"].shape == (2, 64, 64, 3)
    assert obs["cameras"]["front"]["K"].shape == (2, 3, 3) and obs["ee_pose"].shape == (2, 7)
    assert len(obs["instruction"]) == 2 and list(info["seed"]) == [5, 6]
    single = make_env("reach_target", image_size=64, cameras="front")
    one, _ = single.reset(seed=6)
    np.testing.assert_array_equal(obs["images"]["front"][1], one["images"]["front"])  # same episodes
    home = single.home_action()
    obs, reward, terminated, truncated, info = envs.step(np.stack([home, home]))
    assert reward.shape == (2,) and obs["ee_pose"].shape == (2, 7) and not terminated.any()
    envs.close()


def test_reset_without_a_seed_continues_from_the_last_seed():
    """gymnasium's contract: ``reset(seed=s); reset()`` is the same pair of episodes every time."""
    env = make_env("reach_target", seed=20, render=False)
    assert [env.reset()[1]["seed"] for _ in range(2)] == [20, 21]  # as before: from make_env's seed
    assert env.reset(seed=5)[1]["seed"] == 5
    assert env.reset()[1]["seed"] == 6
    assert env.reset(seed=5)[1]["seed"] == 5 and env.reset()[1]["seed"] == 6


@pytest.mark.parametrize(
    ("task", "split", "seed", "instruction", "first_object", "front_camera"),
    [
        (
            "reach_target",
            "train",
            0,
            "reach the green target",
            [0.510339, -0.053014, 0.078075],
            [1.3, 0, 0.85],
        ),
        ("pick_up_cube", "heldout", 5, "pick up the silver cube", [0.431978, 0.27268], [1.3, 0, 0.85]),
        (
            "open_drawer",
            "heldout_cameras",
            5,
            "open the top drawer",
            [0.800982, -0.237724],
            [1.035006, 0.357776, 0.549706],
        ),
    ],
)
def test_seeds_give_the_episodes_they_gave_before(task, split, seed, instruction, first_object, front_camera):
    """Pinned from before the gymnasium changes (issue 13): a seed's scene is part of the benchmark.
    (Before/after, the first frames and one step of 84 episodes were compared bit for bit too.)"""
    env = make_env(task, split=split, seed=seed, render=False)
    obs, _ = env.reset()
    assert obs["instruction"] == instruction
    np.testing.assert_allclose(env.task_state.objects[0], first_object, atol=1e-6)
    np.testing.assert_allclose(obs["cameras"]["front"]["cam_to_world"][:3, 3], front_camera, atol=1e-6)
