"""The policy server and the thin client: same plans as in-process, bad input answered, never
unpickled, tokens, several clients, disconnects."""

from __future__ import annotations

import threading
from pathlib import Path

import msgpack
import numpy as np
import pytest
from actionimages_client import ServerError, WebsocketPolicy, packb, unpackb
from actionimages_client.msgpack_numpy import WireError

from actionimages.errors import ActionImagesError

sim = pytest.importorskip("actionimages.sim")
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny"


@pytest.fixture(scope="module")
def server():
    from actionimages.model import load_model
    from actionimages.serve import PolicyServer

    srv = PolicyServer(load_model(SHIPPED), port=0, num_steps=2, seed=0, max_message_bytes=2**20)
    _, stop = srv.run_in_thread()
    yield srv
    stop()


def _request(env_seed: int = 0, episode: str = "e1") -> dict:
    env = sim.make_env("reach_target", split="test", seed=env_seed, image_size=64)
    obs, _ = env.reset(seed=env_seed)
    env.close()
    cams = {
        n: {"image": obs["images"][n], "K": c["K"], "cam_to_world": c["cam_to_world"]}
        for n, c in obs["cameras"].items()
    }
    return {
        "episode_id": episode,
        "instruction": obs["instruction"],
        "ee_pose": obs["ee_pose"],
        "cameras": cams,
    }


def test_wire_format_round_trip_and_refusals():
    msg = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.uint8(7), "s": "x", "n": [1, 2.5]}
    back = unpackb(packb(msg))
    np.testing.assert_array_equal(back["a"], msg["a"])
    assert back["a"].dtype == np.float32 and back["b"] == 7 and back["s"] == "x"
    with pytest.raises(WireError, match="unsupported dtype"):
        packb({"x": np.array(["a"], dtype=object)})
    with pytest.raises(WireError, match="not a msgpack"):
        unpackb(b"\xc1\xc1garbage")
    bad = msgpack.packb({"x": {"__ndarray__": True, "data": b"123", "dtype": "<f8", "shape": [4]}})
    with pytest.raises(WireError, match="bytes"):
        unpackb(bad)
    pickled = msgpack.packb({"x": {"__ndarray__": True, "data": b"", "dtype": "|O", "shape": [0]}})
    with pytest.raises(WireError, match="unsupported dtype"):
        unpackb(pickled)


def test_wire_format_is_openpis_both_ways():
    """openpi_client.msgpack_numpy (installed from PyPI) reads our arrays and we read its arrays."""
    openpi = pytest.importorskip("openpi_client.msgpack_numpy")
    msg = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "g": np.float64(2.5),
        "nested": {"b": np.ones(2, bool)},
    }
    theirs = openpi.unpackb(packb(msg))
    assert isinstance(theirs["a"], np.ndarray) and theirs["a"].dtype == np.float32
    np.testing.assert_array_equal(theirs["a"], msg["a"])
    assert theirs["g"] == 2.5 and theirs["nested"]["b"].tolist() == [True, True]
    ours = unpackb(openpi.packb(msg))
    np.testing.assert_array_equal(ours["a"], msg["a"])
    assert ours["g"] == 2.5 and ours["nested"]["b"].dtype == bool
    # protocol 1's string keys are still read
    old = msgpack.packb({"x": {"__ndarray__": True, "data": b"\x01\x02", "dtype": "|u1", "shape": [2]}})
    assert unpackb(old)["x"].tolist() == [1, 2]


def test_openpis_own_client_runs_an_episode_against_the_server(server):
    """openpi's WebsocketClientPolicy, unchanged, drives a short sim episode through our server and
    gets the plans our own client gets for the same episode and seed."""
    openpi = pytest.importorskip("openpi_client.websocket_client_policy")
    policy = openpi.WebsocketClientPolicy(host=f"ws://127.0.0.1:{server.port}")
    meta = policy.get_server_metadata()
    assert meta["server"] == "actionimages" and meta["horizon"] >= 2
    env = sim.make_env("reach_target", split="test", seed=3, image_size=64)
    obs, _ = env.reset(seed=3)
    first = None
    for _ in range(2):  # two plans, executing k poses of each
        cams = {
            n: {"image": obs["images"][n], "K": c["K"], "cam_to_world": c["cam_to_world"]}
            for n, c in obs["cameras"].items()
        }
        req = {"episode_id": "openpi-1", "instruction": obs["instruction"], "ee_pose": obs["ee_pose"],
               "cameras": cams, "seed": 3}  # fmt: skip
        reply = policy.infer(req)
        assert "error" not in reply, reply
        assert isinstance(reply["actions"], np.ndarray) and reply["actions"].shape[1] == 7
        first = reply if first is None else first
        for pose in reply["actions"][: meta["default_execute"]]:
            obs, *_ = env.step(pose)
    env.close()
    ours = WebsocketPolicy("127.0.0.1", server.port)
    ours.reset(episode_id="ours-1", seed=3)
    env = sim.make_env("reach_target", split="test", seed=3, image_size=64)
    obs0, _ = env.reset(seed=3)
    env.close()
    cams = {n: {"K": c["K"], "cam_to_world": c["cam_to_world"]} for n, c in obs0["cameras"].items()}
    again = ours.infer(ours.request(obs0["images"], cams, obs0["ee_pose"], obs0["instruction"]))
    np.testing.assert_array_equal(again["actions"], first["actions"])
    ours.close()


@pytest.mark.parametrize("seed", [0, 7741])
def test_server_gives_the_in_process_actions_seed_for_seed(server, tmp_path, seed):
    """The server was started with --seed 0; ``eval --server --seed S`` still samples what an
    in-process ``eval --seed S`` samples, because the client sends the episode and base seeds."""
    from actionimages.eval.runner import PolicySpec, evaluate

    common = dict(tasks=["reach_target"], split="test", episodes=2, seed=seed, max_steps=6, image_size=64)
    local = evaluate(
        PolicySpec("action_images", str(SHIPPED), {"num_steps": 2, "seed": seed}),
        out=tmp_path / "a",
        **common,
    )
    url = f"ws://127.0.0.1:{server.port}"
    remote = evaluate(
        PolicySpec("server", None, {"url": url, "seed": seed, "token": "t"}), out=tmp_path / "b", **common
    )
    for ea, eb in zip(local["episodes"], remote["episodes"], strict=True):
        assert ea["success"] == eb["success"] and ea["steps"] == eb["steps"]
        ta, tb = np.load(ea["trajectory"]), np.load(eb["trajectory"])
        np.testing.assert_array_equal(ta["actions"], tb["actions"])  # the very same targets
    assert remote["tasks"]["reach_target"]["replans"] == local["tasks"]["reach_target"]["replans"]
    assert remote["policy"]["options"]["token"] == "<redacted>"  # no secret in results.json
    assert '"t"' not in (tmp_path / "b" / "results.json").read_text()


def test_bad_requests_get_named_errors_and_the_connection_stays_usable(server):
    with WebsocketPolicy("127.0.0.1", server.port) as client:
        meta = client.metadata
        assert meta["num_views"] == 2 and meta["horizon"] == 4 and meta["model_config"] == "tiny"
        good = _request()
        cases = []
        r = dict(good, extra=1)
        cases.append((r, "unknown_field"))
        r = dict(good, cameras={k: {"image": v["image"]} for k, v in good["cameras"].items()})
        cases.append((r, "missing_calibration"))
        r = dict(good, ee_pose=np.full(7, np.nan))
        cases.append((r, "not_finite"))
        r = dict(good, cameras={k: dict(v, image=v["image"][..., :2]) for k, v in good["cameras"].items()})
        cases.append((r, "bad_shape"))
        r = dict(
            good,
            cameras={k: dict(v, image=np.zeros((400, 400, 3), np.uint8)) for k, v in good["cameras"].items()},
        )
        cases.append((r, "too_large"))
        r = {k: v for k, v in good.items() if k != "instruction"}
        cases.append((r, "missing_field"))
        r = dict(good, ee_pose=np.array([50.0, 0, 0.3, np.pi, 0, 0, 1]))  # 50 m away: mm read as m?
        cases.append((r, "outside_workspace"))
        r = dict(
            good,
            cameras={k: dict(v, image=np.zeros((2, 2, 3), np.uint8)) for k, v in good["cameras"].items()},
        )
        cases.append((r, "bad_image_size"))
        cases.append((dict(good, rotation="rodrigues"), "bad_request"))
        for req, code in cases:
            with pytest.raises(ServerError) as err:
                client.infer(req)
            assert err.value.code == code, (code, err.value)
        client._ws.send(b"\x00garbage")  # raw garbage, then a text frame
        assert unpackb(client._ws.recv(timeout=30))["error"]["code"] == "bad_message"
        client._ws.send("hello")
        assert unpackb(client._ws.recv(timeout=30))["error"]["code"] == "bad_request"
        out = client.infer(dict(good, return_images=True))  # still serving
        assert out["actions"].shape == (4, 7) and out["valid"].shape == (4,)
        assert (
            set(out["action_images"]) == set(out["views"]) and out["action_images"]["front"].dtype == np.uint8
        )
        assert {"preprocess", "text", "denoise", "decode", "codec", "total"} <= set(out["timing"])


def _geodesic(e0: np.ndarray, e1: np.ndarray) -> float:
    from actionimages.codec.poses import euler_to_matrix

    r = euler_to_matrix(np.asarray(e1)) @ euler_to_matrix(np.asarray(e0)).T
    return float(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))


def test_plans_are_continuous_in_euler_and_in_the_rotation_forms_on_request(server):
    """At the top-down home pose rx sits at +-pi: the reply's Euler angles never jump by more than
    the true rotation change, and quaternions / matrices describe the same rotations continuously."""
    from actionimages.codec.poses import euler_to_matrix, quat_to_matrix

    good = _request()
    for flip in (1.0, -1.0):  # the robot may report rx as +pi or as -pi
        pose = np.array(good["ee_pose"], dtype=np.float64)
        pose[3] = flip * abs(pose[3])
        with WebsocketPolicy("127.0.0.1", server.port) as client:
            q = client.infer(dict(good, ee_pose=pose, rotation="quaternion", episode_id=f"q{flip}"))
            m = client.infer(dict(good, ee_pose=pose, rotation="matrix", episode_id=f"m{flip}"))
        eulers = np.vstack([pose[3:6], q["actions"][:, 3:6]])
        for a, b in zip(eulers[:-1], eulers[1:], strict=True):
            assert np.abs(b - a).max() <= 2 * _geodesic(a, b) + 1e-6, (a, b)
        np.testing.assert_allclose(
            quat_to_matrix(q["rotations"]), euler_to_matrix(q["actions"][:, 3:6]), atol=1e-9
        )
        np.testing.assert_allclose(m["rotations"], euler_to_matrix(m["actions"][:, 3:6]), atol=1e-9)
        assert np.all(np.sum(q["rotations"][1:] * q["rotations"][:-1], axis=1) >= 0)  # no sign flips


def test_cameras_are_chosen_by_name_not_by_the_order_of_the_map(server):
    good = _request()
    backwards = dict(good, cameras=dict(reversed(list(good["cameras"].items()))))
    with WebsocketPolicy("127.0.0.1", server.port) as client:
        a = client.infer(dict(good, episode_id="order-a", seed=4))
        b = client.infer(dict(backwards, episode_id="order-b", seed=4))
    assert a["views"] == b["views"] == sorted(good["cameras"])[:2]
    np.testing.assert_array_equal(a["actions"], b["actions"])


def test_the_executor_never_wraps_a_target_across_pi():
    from actionimages_client import ChunkExecutor

    current = np.array([0.5, 0, 0.3, np.pi - 0.01, 0, 0, 1.0])
    plan = np.array([[0.5, 0, 0.3, a, 0, 0, 1.0] for a in (np.pi - 0.005, -np.pi + 0.005, -np.pi + 0.02)])
    for options in ({}, {"ensemble": 0.1}, {"max_step_rad": 0.5}):
        ex = ChunkExecutor(3, 3, **options)
        ex.load(plan, np.ones(3, bool), current)
        targets = [ex.pop()[0] for _ in range(3)]
        rx = [current[3]] + [t[3] for t in targets]
        assert np.all(np.abs(np.diff(rx)) < 0.05), (options, rx)  # never a 2*pi jump
        assert abs(rx[-1] - (np.pi + 0.02)) < 1e-9  # -pi + 0.02, one turn on: the same rotation


def test_the_client_reconnects_after_a_restart_and_holds_when_the_server_is_gone(server):
    from actionimages_client import ConnectionLost

    from actionimages.model import load_model
    from actionimages.serve import PolicyServer

    model = load_model(SHIPPED)
    first = PolicyServer(model, port=0, num_steps=1)
    _, stop = first.run_in_thread()
    port = first.port
    client = WebsocketPolicy("127.0.0.1", port, reconnects=4, timeout=30)
    req = _request()
    assert client.infer(req)["actions"].shape == (4, 7)
    stop()  # the server restarts on the same port: the client reconnects and asks again
    second = PolicyServer(model, port=port, num_steps=1)
    _, stop = second.run_in_thread()
    assert client.infer(req)["actions"].shape == (4, 7) and second.served == 1
    stop()  # now it is gone for good
    client.reconnects = 1
    with pytest.raises(ConnectionLost, match="cannot reach"):
        client.infer(req)
    client.reset(episode_id="held")
    images = {n: c["image"] for n, c in req["cameras"].items()}
    held = client.act(images, req["cameras"], req["ee_pose"], req["instruction"])
    np.testing.assert_array_equal(held, np.asarray(req["ee_pose"], dtype=np.float64)[:7])  # holds, no raise
    assert client.holds == 1
    client.hold_on_failure = False
    with pytest.raises(ConnectionLost):
        client.act(images, req["cameras"], req["ee_pose"], req["instruction"])
    client.close()


def test_the_prefetching_loop_asks_early_and_drops_the_poses_whose_time_passed(server):
    """With prefetch the next request goes out while a target is still queued; a plan that
    arrives one step after its observation starts one pose in; the loop waits only when empty."""
    import time as _time

    req = _request()
    images = {n: c["image"] for n, c in req["cameras"].items()}
    with WebsocketPolicy("127.0.0.1", server.port, prefetch=True) as client:
        client.reset(episode_id="prefetch", seed=0)
        assert client.executor.execute == 2 and client.prefetch_at == 1
        first = client.act(images, req["cameras"], req["ee_pose"], req["instruction"])
        assert client.waits == 1 and client.executor.remaining == 1  # the first plan: nothing to run yet
        np.testing.assert_allclose(first[:3], client.last["actions"][0][:3])
        client.act(images, req["cameras"], req["ee_pose"], req["instruction"])  # asks, runs the queue
        assert client._pending is not None and client.executor.remaining == 0
        while not client._pending[0].done():
            _time.sleep(0.01)
        third = client.act(images, req["cameras"], req["ee_pose"], req["instruction"])
        assert client.dropped == 1 and client.waits == 1 and client.last["replan"] == 2
        np.testing.assert_allclose(third[:3], client.last["actions"][1][:3])  # pose 0's time had passed
        assert set(client.timing) == {"pack", "round_trip", "unpack"}


def test_the_executor_keeps_targets_in_the_workspace_and_the_gripper_range():
    from actionimages_client import ChunkExecutor

    current = np.array([0.5, 0, 0.3, np.pi, 0, 0, 1.0])
    plan = np.array([[0.5, 0, 0.3, np.pi, 0, 0, 1.4], [5.0, -9, 0.3, np.pi, 0, 0, -0.2]])
    ex = ChunkExecutor(2, 2, workspace=([0, -0.5, 0], [1, 0.5, 1]), gripper=(0.0, 1.0))
    ex.load(plan, np.ones(2, bool), current)
    first, second = ex.pop()[0], ex.pop()[0]
    assert first[6] == 1.0 and second[6] == 0.0
    np.testing.assert_array_equal(second[:3], [1.0, -0.5, 0.3])
    with pytest.raises(ValueError, match="workspace"):
        ChunkExecutor(2, 2, workspace=([1, 0, 0], [0, 1, 1]))


def test_serve_refuses_a_busy_port_before_loading_the_model(capsys):
    import socket

    from actionimages.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--checkpoint", "does/not/exist", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0]  # not the missing checkpoint


def test_several_clients_and_a_disconnect_mid_inference(server):
    served = server.served
    abandon = WebsocketPolicy("127.0.0.1", server.port)
    abandon._ws.send(packb(_request(episode="gone")))
    abandon._ws.close()  # leaves before its answer
    results, errors = {}, []

    def run(i: int) -> None:
        try:
            with WebsocketPolicy("127.0.0.1", server.port) as c:
                results[i] = [c.infer(_request(env_seed=i, episode=f"c{i}"))["replan"] for _ in range(2)]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and results == {0: [1, 2], 1: [1, 2], 2: [1, 2]}  # each its own episode counter
    assert server.served >= served + 6


def test_tokens_and_non_local_binds(server):
    from websockets.exceptions import InvalidStatus

    from actionimages.model import load_model
    from actionimages.serve import PolicyServer

    model = load_model(SHIPPED)
    with pytest.raises(ActionImagesError, match="without a token"):
        PolicyServer(model, host="0.0.0.0", port=0)
    srv = PolicyServer(model, port=0, token="s3cret", num_steps=1)
    _, stop = srv.run_in_thread()
    try:
        with pytest.raises(InvalidStatus):
            WebsocketPolicy("127.0.0.1", srv.port)
        with pytest.raises(InvalidStatus):
            WebsocketPolicy("127.0.0.1", srv.port, token="wrong")
        with WebsocketPolicy("127.0.0.1", srv.port, token="s3cret") as c:
            assert c.infer(_request())["actions"].shape == (4, 7)
    finally:
        stop()


def test_client_executor_options():
    from actionimages_client import ChunkExecutor

    ex = ChunkExecutor(execute=2, horizon=4, max_step_m=0.01, max_step_rad=0.05)
    start = np.array([0.4, 0.0, 0.3, np.pi, 0.0, 0.0, 1.0])
    plan = np.repeat(start[None], 4, 0)
    plan[:, 0] += 0.1  # 10 cm ahead
    plan[:, 5] += 0.5  # and turned 0.5 rad
    ex.load(plan, np.ones(4, bool), start)
    t1, _ = ex.pop()
    assert abs(np.linalg.norm(t1[:3] - start[:3]) - 0.01) < 1e-9
    from actionimages.codec.poses import euler_to_matrix

    r = euler_to_matrix(t1[3:6]) @ euler_to_matrix(start[3:6]).T
    assert abs(np.arccos((np.trace(r) - 1) / 2) - 0.05) < 1e-6
    ens = ChunkExecutor(execute=1, horizon=4, ensemble=0.0)
    a = np.repeat(start[None], 4, 0)
    ens.load(a, np.ones(4, bool), start)
    ens.pop()
    b = a.copy()
    b[:, 0] += 0.02
    ens.load(b, np.ones(4, bool), start)
    t, _ = ens.pop()  # step 1: mean of plan a (its 2nd pose) and plan b (its 1st)
    assert abs(t[0] - (start[0] + 0.01)) < 1e-9


def test_calibration_file_supplies_missing_camera_calibration(tmp_path, capsys):
    """``serve --calibration``: cameras may omit K and cam_to_world; a camera calibrated nowhere gets a
    named error and the connection stays usable; request-supplied calibration keeps working."""
    from actionimages.calibrate import calibration_dict, load_calibration, save_calibration
    from actionimages.cli import main
    from actionimages.codec import as_camera
    from actionimages.model import load_model
    from actionimages.serve import PolicyServer
    from actionimages.serve.server import parse_request

    good = _request()
    truth = {n: as_camera(dict(c, width=64, height=64)) for n, c in good["cameras"].items()}
    calib = tmp_path / "calibration.json"
    save_calibration(calib, calibration_dict(truth, dict.fromkeys(truth, 0.0)))
    srv = PolicyServer(load_model(SHIPPED), port=0, num_steps=2, seed=0, calibration=load_calibration(calib))
    _, stop = srv.run_in_thread()
    try:
        with WebsocketPolicy("127.0.0.1", srv.port) as client:
            assert client.metadata["calibrated_cameras"] == sorted(truth)
            given = client.infer(dict(good, episode_id="given"))
            bare = {n: {"image": c["image"]} for n, c in good["cameras"].items()}
            from_file = client.infer(dict(good, episode_id="file", cameras=bare))
            np.testing.assert_array_equal(given["actions"], from_file["actions"])  # the same cameras
            cases = [
                (dict(bare, side={"image": bare["front"]["image"]}), "missing_calibration", "'side'"),
                (
                    dict(bare, front=dict(bare["front"], K=good["cameras"]["front"]["K"])),
                    "missing_calibration",
                    "no cam_to_world",
                ),
                (dict(bare, front={"image": np.zeros((48, 64, 3), np.uint8)}), "bad_calibration", "aspect"),
            ]
            for cams, code, text in cases:
                with pytest.raises(ServerError) as err:
                    client.infer(dict(good, episode_id="bad", cameras=cams))
                assert err.value.code == code and text in str(err.value), err.value
            # the client sends K and cam_to_world only for the cameras it is given
            client.reset(episode_id="client")
            images = {n: c["image"] for n, c in good["cameras"].items()}
            req = client.request(images, None, good["ee_pose"], good["instruction"])
            assert all(set(c) == {"image"} for c in req["cameras"].values())
            assert client.infer(req)["actions"].shape == (4, 7)  # still serving
    finally:
        stop()
    # at 128 px the file's K is scaled to the 64 px images (only the resolution differs)
    big = {
        n: as_camera(dict(c, width=64, height=64)).crop_resize(128, 128) for n, c in good["cameras"].items()
    }
    obs, *_ = parse_request(dict(good, cameras=bare), 2, big)
    np.testing.assert_allclose(obs["cameras"]["front"].K[0, 0], truth["front"].K[0, 0])
    assert main(["serve", "--checkpoint", str(SHIPPED), "--calibration", str(tmp_path / "none.json")]) == 2
    assert "calibration file" in capsys.readouterr().err


def test_serve_any_registered_kind_image_bc_gives_the_in_process_actions(tmp_path, capsys):
    """A baseline checkpoint is served like a world model (its kind detected): remote equals local
    for the same episodes; the metadata names the kind; world-model planning options are refused."""
    from actionimages.eval.runner import PolicySpec, evaluate
    from actionimages.policy.registry import build_policy
    from actionimages.serve import PolicyServer

    bc = Path(__file__).resolve().parents[1] / "checkpoints" / "bc"
    srv = PolicyServer(build_policy("bc", str(bc)), port=0, checkpoint=str(bc))
    _, stop = srv.run_in_thread()
    try:
        assert srv.metadata["policy_kind"] == "bc" and srv.metadata["num_views"] == 2
        common = dict(tasks=["push_button"], split="test", episodes=2, seed=0, max_steps=8, image_size=64)
        local = evaluate(PolicySpec("bc", str(bc)), out=tmp_path / "a", **common)
        remote = evaluate(
            PolicySpec("server", None, {"url": f"ws://127.0.0.1:{srv.port}"}), out=tmp_path / "b", **common
        )
        for ea, eb in zip(local["episodes"], remote["episodes"], strict=True):
            np.testing.assert_allclose(
                np.load(ea["trajectory"])["actions"], np.load(eb["trajectory"])["actions"]
            )
        with WebsocketPolicy("127.0.0.1", srv.port) as client:
            reply = client.infer(dict(_request(), return_images=True))
            assert reply["actions"].shape == (8, 7) and "action_images" not in reply  # BC draws none
            assert reply["views"] and reply["timing"]["total"] > 0
    finally:
        stop()
    with pytest.raises(ActionImagesError, match="belong to the policy"):
        PolicyServer(build_policy("bc", str(bc)), port=0, num_steps=2)
    with pytest.raises(ActionImagesError, match="cannot be served"):
        PolicyServer(build_policy("expert"), port=0)
