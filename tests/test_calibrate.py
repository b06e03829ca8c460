"""Camera calibration: the board, the solvers, the calibration file, the sim proof and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from actionimages.calibrate import (
    BoardDetector,
    BoardSpec,
    CameraViews,
    Detection,
    calibrate_extrinsics,
    calibrate_intrinsics,
    calibration_dict,
    load_calibration,
    save_calibration,
)
from actionimages.calibrate.overlay import overlay, parse_pose
from actionimages.calibrate.sim import TARGETS, CalibrationScene, facing_rotation, sim_check
from actionimages.calibrate.solve import invert, make_transform, pose_errors, solve_ay_yb
from actionimages.cli import main
from actionimages.codec import Camera
from actionimages.errors import ActionImagesError
from actionimages.sim.scene import build_scene_xml

cv2 = pytest.importorskip("cv2")
BOARD = BoardSpec.parse("6x5:0.05:0.0375:DICT_4X4_50")


def _camera(eye, target, size=512) -> Camera:
    return Camera.look_at(np.array(eye), np.array(target), fov_y_deg=45.0, width=size, height=size)


def _random_pose(rng) -> np.ndarray:
    return make_transform(Rotation.from_rotvec(rng.normal(scale=0.5, size=3)).as_matrix(), rng.normal(size=3))


# ------------------------------------------------------------------------------------ board
def test_board_spec_parses_and_refuses_bad_specs(tmp_path):
    assert BOARD == BoardSpec(6, 5, 0.05, 0.0375, "DICT_4X4_50")
    assert BOARD.num_corners == 20 and BOARD.size_m == pytest.approx((0.3, 0.25))
    f = tmp_path / "board.json"
    f.write_text(json.dumps({"board": BOARD.to_dict()}))
    assert BoardSpec.parse(str(f)) == BOARD
    for bad, needle in [
        ("6x5", "COLSxROWS"),
        ("6x5:0.05:0.06", "marker < square"),
        ("6x5:0.05:0.03:DICT_NOPE", "unknown ArUco dictionary"),
        ("1x5:0.05:0.03", "at least 2×2"),
        ("20x20:0.05:0.03:DICT_4X4_50", "needs 200 markers"),
    ]:
        with pytest.raises(ActionImagesError, match=needle):
            BoardSpec.parse(bad)


def test_board_is_detected_in_a_flat_print():
    img = BOARD.image(px_per_square=60, margin_px=20)
    d = BoardDetector(BOARD).detect(img)
    assert d is not None and len(d) == BOARD.num_corners
    # corner (x, y) m sits at pixel (x, y)/square·60 + margin - 0.5 (pixel centres at integers)
    expected = d.object_points[:, :2] / BOARD.square * 60 + 20 - 0.5
    np.testing.assert_allclose(d.pixels, expected, atol=0.25)  # a hard-edged print: coarse sub-pixel
    assert BoardDetector(BOARD).detect(np.full((100, 100), 255, np.uint8)) is None


def test_board_is_detected_in_a_sim_render_where_the_true_cameras_put_it():
    scene = CalibrationScene(BOARD, 384, held=True)
    try:
        cam = scene.true_camera("front")
        R = facing_rotation(cam.center - np.array([0.5, 0.0, 0.35]))
        assert scene.move(np.array([0.55, 0.0, 0.45]), R)
        d = BoardDetector(BOARD).detect(scene.render("front"))
        T = scene.board_pose()
    finally:
        scene.close()
    assert d is not None and len(d) >= 16
    uv, _ = cam.project(d.object_points @ T[:3, :3].T + T[:3, 3])
    err = np.linalg.norm(d.pixels - uv, axis=1)
    assert err.max() < 0.5, err


def test_the_benchmark_scene_is_untouched_and_the_variant_has_its_cameras():
    from actionimages.sim import make_env

    assert "charuco" not in build_scene_xml()
    env = make_env("reach_target", image_size=384, render=False)
    env.reset(seed=0)
    scene = CalibrationScene(BOARD, 384, held=True)
    try:
        for name, cam in env.cameras().items():
            ours = scene.true_camera(name)
            np.testing.assert_allclose(ours.K, cam.K)
            np.testing.assert_allclose(ours.cam_to_world, cam.cam_to_world, atol=1e-9)
    finally:
        scene.close()
        env.close()


# ----------------------------------------------------------------------------------- solvers
def test_ay_yb_recovers_the_transform_and_refuses_one_rotation_axis():
    rng = np.random.default_rng(0)
    Y = _random_pose(rng)
    A = [_random_pose(rng) for _ in range(6)]
    B = [Y @ a @ invert(Y) for a in A]  # B Y = Y A
    np.testing.assert_allclose(solve_ay_yb(A, B), Y, atol=1e-9)
    axis = np.array([0.0, 0.0, 1.0])
    A1 = [make_transform(Rotation.from_rotvec(axis * t).as_matrix(), rng.normal(size=3)) for t in (0.3, 0.7)]
    with pytest.raises(ActionImagesError, match="single axis"):
        solve_ay_yb(A1, [Y @ a @ invert(Y) for a in A1])


def _synthetic_views(rng, cameras: dict[str, Camera], X: np.ndarray, n: int, noise: float = 0.0):
    corners = BOARD.corners_3d()
    ee, views = [], {c: {} for c in cameras}
    while len(ee) < n:
        centre = rng.uniform([0.35, -0.2, 0.3], [0.65, 0.2, 0.5])
        to_cams = np.mean(
            [(c.center - centre) / np.linalg.norm(c.center - centre) for c in cameras.values()], 0
        )
        n_vec = to_cams / np.linalg.norm(to_cams) + rng.normal(scale=0.25, size=3)
        G = make_transform(facing_rotation(n_vec, rng.uniform(-0.5, 0.5)), centre)
        k = len(ee)
        ee.append(G)
        for name, cam in cameras.items():
            T = G @ X
            uv, depth = cam.project(corners @ T[:3, :3].T + T[:3, 3])
            views[name][k] = Detection(
                np.arange(len(corners)), uv + rng.normal(scale=noise, size=uv.shape), corners
            )
    return np.stack(ee), views


def test_extrinsics_recover_synthetic_cameras_exactly_and_with_noise():
    rng = np.random.default_rng(1)
    cams = {"a": _camera([1.3, 0.0, 0.85], [0.45, 0, 0.05]), "b": _camera([0.4, 0.1, 1.35], [0.5, 0, 0])}
    X = make_transform(Rotation.from_euler("xyz", [0.1, -0.2, 0.3]).as_matrix(), [0.03, 0.1, 0.2])
    ee, views = _synthetic_views(rng, cams, X, 10)
    res = calibrate_extrinsics({c: CameraViews(512, 512, views[c], cams[c].K) for c in cams}, ee)
    for c, cam in cams.items():
        dp, dr = pose_errors(res.cameras[c].cam_to_world, cam.cam_to_world)
        assert dp < 1e-6 and dr < 1e-5 and res.reprojection_px[c] < 1e-6
    np.testing.assert_allclose(res.board_in_ee, X, atol=1e-6)
    # unknown intrinsics, 0.1 px noise: K from the views, refined with the robot's motion
    ee, views = _synthetic_views(rng, cams, X, 16, noise=0.1)
    res = calibrate_extrinsics({c: CameraViews(512, 512, views[c]) for c in cams}, ee)
    for c, cam in cams.items():
        dp, dr = pose_errors(res.cameras[c].cam_to_world, cam.cam_to_world)
        assert dp < 0.005 and dr < 0.5 and res.reprojection_px[c] < 0.2
        assert abs(res.cameras[c].K[0, 0] / cam.K[0, 0] - 1) < 0.01


def test_too_few_detections_are_refused_by_name():
    d = Detection(np.arange(20), np.zeros((20, 2)), BOARD.corners_3d())
    with pytest.raises(ActionImagesError, match=r"found .* in 2 of 5 images; intrinsics need at least 4"):
        calibrate_intrinsics([d, d, None, None, None], 512, 512, what="front")
    views = {"front": CameraViews(512, 512, {0: d, 1: None, 2: None, 3: d})}
    with pytest.raises(ActionImagesError, match=r"camera 'front': the board was found .* in 2 of 4 images"):
        calibrate_extrinsics(views, np.stack([np.eye(4)] * 4))
    with pytest.raises(ActionImagesError, match="have no robot pose"):
        calibrate_extrinsics({"front": CameraViews(512, 512, {7: d})}, np.stack([np.eye(4)] * 4))


# ---------------------------------------------------------------------------- the file
def test_calibration_file_round_trips_and_names_bad_entries(tmp_path):
    cams = {
        "front": _camera([1.3, 0, 0.85], [0.45, 0, 0.05]),
        "top": _camera([0.4, 0, 1.35], [0.5, 0, 0], 256),
    }
    f = tmp_path / "calib.json"
    save_calibration(f, calibration_dict(cams, {"front": 0.1, "top": 0.2}, BOARD.to_dict()))
    data = json.loads(f.read_text())
    assert data["cameras"]["top"]["reprojection_px"] == 0.2 and data["board"]["cols"] == 6 and data["created"]
    loaded = load_calibration(f)
    assert set(loaded) == {"front", "top"} and loaded["top"].width == 256
    for name, cam in cams.items():
        np.testing.assert_allclose(loaded[name].K, cam.K)
        np.testing.assert_allclose(loaded[name].cam_to_world, cam.cam_to_world)
    assert list(load_calibration(f, ["top"])) == ["top"]
    with pytest.raises(ActionImagesError, match=r"has no camera 'wrist'; it has \['front', 'top'\]"):
        load_calibration(f, ["front", "wrist"])
    data["cameras"]["top"]["cam_to_world"][0][0] = 3.0
    data["cameras"]["front"]["K"] = [[1, 0], [0, 1]]
    f.write_text(json.dumps(data))
    with pytest.raises(ActionImagesError, match="camera 'top': cam_to_world is not rigid"):
        load_calibration(f, ["top"])
    with pytest.raises(ActionImagesError, match=r"camera 'front': K must have shape \(3, 3\)"):
        load_calibration(f, ["front"])
    del data["cameras"]["front"]["width"]
    f.write_text(json.dumps(data))
    with pytest.raises(ActionImagesError, match=r"camera 'front': camera calibration is missing \['width'\]"):
        load_calibration(f, ["front"])
    with pytest.raises(ActionImagesError, match="does not exist"):
        load_calibration(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ActionImagesError, match="not valid JSON"):
        load_calibration(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ActionImagesError, match="no 'cameras' mapping"):
        load_calibration(tmp_path / "empty.json")


# ----------------------------------------------------------------------------- the sim proof
def test_sim_check_meets_the_targets_on_seed_0():
    r = sim_check(seed=0)
    assert r["passed"], r
    for key, target in TARGETS.items():
        assert r[key] <= target
    assert set(r["cameras"]) == {"front", "left_shoulder", "right_shoulder", "overhead"}
    assert all(c["views"] >= 4 for c in r["cameras"].values())
    assert r["board_in_ee_error"]["position_mm"] < 1.0


def test_sim_check_refuses_bad_arguments():
    with pytest.raises(ActionImagesError, match="bad cameras"):
        sim_check(cameras=["wrist"])
    with pytest.raises(ActionImagesError, match="at least 4"):
        sim_check(poses=2)
    with pytest.raises(ActionImagesError, match="image size"):
        sim_check(image_size=2048)


# ------------------------------------------------------------------------------------ CLI
def test_cli_intrinsics_extrinsics_and_overlay_on_saved_sim_renders(tmp_path, capsys):
    save = tmp_path / "sim"
    argv = ["calibrate", "sim-check", "--camera", "front,overhead", "--poses", "10", "--save", str(save)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] and set(out["cameras"]) == {"front", "overhead"}
    assert len(list((save / "images" / "front").glob("*.png"))) == 10

    intr = tmp_path / "front_intrinsics.json"
    assert (
        main(["calibrate", "intrinsics", "--images", str(save / "intrinsics" / "front"), "--out", str(intr)])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["reprojection_px"] < 0.2 and summary["views"] == 12

    calib = tmp_path / "calibration.json"
    argv = ["calibrate", "extrinsics", "--poses", str(save / "poses.json"), "--images", str(save / "images")]
    argv += ["--intrinsics", f"front={intr}", "--out", str(calib)]  # overhead: K from the held-board views
    assert main(argv) == 0
    capsys.readouterr()
    truth = load_calibration(save / "truth.json")
    for name, cam in load_calibration(calib).items():
        dp, dr = pose_errors(cam.cam_to_world, truth[name].cam_to_world)
        assert dp < 0.01 and dr < 0.5, (name, dp, dr)

    pose = json.loads((save / "poses.json").read_text())["poses"][0] + [1.0]
    png = tmp_path / "overlay.png"
    argv = ["calibrate", "overlay", "--calibration", str(calib), "--camera", "front"]
    argv += ["--image", str(save / "images" / "front" / "000.png"), f"--pose={','.join(map(str, pose))}"]
    assert main([*argv, "--out", str(png)]) == 0
    drawn = cv2.imread(str(png))
    assert drawn.shape == (512, 512, 3)
    shown = json.loads(capsys.readouterr().out)["pixels"]["P_pos"]
    u, v = (int(round(x)) for x in shown)
    assert drawn[v, u, 2] > drawn[v, u, 1] + 60  # red blob at the tool centre point (BGR)

    assert main([*argv[:-1], "--pose=1,2,3", "--out", str(png)]) == 2
    assert "x,y,z,rx,ry,rz" in capsys.readouterr().err
    assert main([*argv[:5], "wrist", *argv[6:], "--out", str(png)]) == 2
    assert "has no camera 'wrist'" in capsys.readouterr().err


def test_cli_refuses_missing_images_and_bad_poses(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["calibrate", "intrinsics", "--images", str(tmp_path / "empty"), "--out", "x.json"]) == 2
    assert "no images" in capsys.readouterr().err
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(5):
        cv2.imwrite(str(blank / f"{i}.png"), np.full((64, 64, 3), 255, np.uint8))
    assert main(["calibrate", "intrinsics", "--images", str(blank / "*.png"), "--out", "x.json"]) == 2
    assert "the board was found (with ≥ 6 corners) in 0 of 5 images" in capsys.readouterr().err
    poses = tmp_path / "poses.json"
    poses.write_text(json.dumps({"poses": [[0, 0, 0]]}))
    (tmp_path / "imgs" / "front").mkdir(parents=True)
    argv = [
        "calibrate",
        "extrinsics",
        "--poses",
        str(poses),
        "--images",
        str(tmp_path / "imgs"),
        "--out",
        "c.json",
    ]
    assert main(argv) == 2
    assert "pose 0 has shape (3,)" in capsys.readouterr().err


def test_overlay_pose_parsing_and_image_size():
    assert parse_pose("0.5, 0, 0.3, 3.14, 0, 0") == pytest.approx([0.5, 0, 0.3, 3.14, 0, 0, 1])
    with pytest.raises(ActionImagesError, match="comma-separated numbers"):
        parse_pose("a,b")
    cam = _camera([1.3, 0, 0.85], [0.45, 0, 0.05], 256)
    img = np.zeros((128, 128, 3), np.uint8)  # half the calibrated resolution: K is scaled
    out = overlay(img, cam, np.array([0.45, 0, 0.05, np.pi, 0, 0, 1.0]))
    assert out.shape == img.shape and out[63:66, 63:66, 0].max() > 100  # the target projects to the centre
    with pytest.raises(ActionImagesError, match="different aspect ratio"):
        overlay(np.zeros((128, 200, 3), np.uint8), cam, np.zeros(7))


def test_sim_check_cli_prints_one_json_object(capsys):
    assert (
        main(["calibrate", "sim-check", "--camera", "overhead", "--poses", "6", "--image-size", "384"]) == 0
    )
    out = capsys.readouterr().out
    r = json.loads(out)  # one object, nothing else on stdout
    assert {"reprojection_px", "position_error_mm", "rotation_error_deg"} <= set(r)
