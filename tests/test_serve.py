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


def test_server_gives_the_in_process_actions_seed_for_seed(server, tmp_path):
    from actionimages.eval.runner import PolicySpec, evaluate

    common = dict(tasks=["reach_target"], split="test", episodes=2, seed=0, max_steps=6, image_size=64)
    local = evaluate(
        PolicySpec("action_images", str(SHIPPED), {"num_steps": 2, "seed": 0}), out=tmp_path / "a", **common
    )
    url = f"ws://127.0.0.1:{server.port}"
    remote = evaluate(PolicySpec("server", None, {"url": url}), out=tmp_path / "b", **common)
    for ea, eb in zip(local["episodes"], remote["episodes"], strict=True):
        assert ea["success"] == eb["success"] and ea["steps"] == eb["steps"]
        ta, tb = np.load(ea["trajectory"]), np.load(eb["trajectory"])
        np.testing.assert_array_equal(ta["actions"], tb["actions"])  # the very same targets
    assert remote["tasks"]["reach_target"]["replans"] == local["tasks"]["reach_target"]["replans"]


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
