"""The policy server: msgpack + numpy over a websocket, in the convention openpi's clients use.

One connection is one client. On connect the server sends a metadata frame (protocol version,
model config, views, image size, action convention, horizon, default k). Each request is one
observation; the answer is one plan (absolute poses, per-frame validity, optional action images,
seconds per stage). A request naming a new ``episode_id`` starts that episode's state (its plan
counter, which seeds the sampling noise exactly as in-process evaluation does), so a client gets
the same plans, seed for seed, as ``actionimages eval`` in one process.

Safety: binds 127.0.0.1 unless told otherwise, and a non-local bind requires a token; only
msgpack maps of numbers, strings and bool/int/float arrays are accepted (never pickle); a bad
request gets an error frame naming the problem and the connection stays usable; a client that
disconnects mid-inference frees its state; oversized messages are refused by size.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import numpy as np
from actionimages_client.chunking import DEFAULT_CONTROL_HZ, DEFAULT_WORKSPACE, unwrap_plan
from actionimages_client.msgpack_numpy import PROTOCOL_VERSION, WireError, packb, unpackb
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from actionimages.calibrate.files import camera_for_image
from actionimages.codec.camera import Camera
from actionimages.errors import ActionImagesError

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
REQUEST_FIELDS = {
    "episode_id", "instruction", "ee_pose", "cameras", "return_images", "seed", "base_seed", "rotation",
}  # fmt: skip
ROTATION_FORMS = ("euler", "quaternion", "matrix")  # "rotation": what the reply's "rotations" holds
CAMERA_FIELDS = {"image", "K", "cam_to_world"}
DEFAULT_MAX_MESSAGE = 64 * 2**20  # bytes: 8 uint8 1080p views fit


class RequestError(ActionImagesError):
    """A request the server refuses; ``code`` goes into the error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _array(value: Any, name: str, shape: tuple[int | None, ...], kinds: str = "iuf") -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise RequestError("bad_request", f"{name} must be an array, got {type(value).__name__}")
    if value.dtype.kind not in kinds:
        raise RequestError("bad_request", f"{name} has dtype {value.dtype}; expected {kinds!r} kinds")
    if value.ndim != len(shape) or any(
        s is not None and d != s for d, s in zip(value.shape, shape, strict=True)
    ):
        want = "×".join("N" if s is None else str(s) for s in shape)
        raise RequestError("bad_shape", f"{name} has shape {tuple(value.shape)}; expected {want}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise RequestError("not_finite", f"{name} holds NaN or infinity")
    return value


def _camera(name: str, cam: dict[str, Any], img: np.ndarray, calibration: Mapping[str, Camera]) -> Camera:
    """The calibration of request camera ``name``: its own ``K`` and ``cam_to_world``, or the server's
    calibration file's when it sends neither (scaled to the image when only the resolution differs)."""
    given = sorted({"K", "cam_to_world"} & set(cam))
    if not given:
        if name not in calibration:
            where = (
                f"the server's calibration file has none (it has {sorted(calibration)})"
                if calibration
                else "the server has no calibration file (serve --calibration)"
            )
            raise RequestError(
                "missing_calibration",
                f"missing calibration for camera {name!r}: the request sends no K and cam_to_world, "
                f"and {where}",
            )
        try:
            return camera_for_image(calibration[name], img.shape[1], img.shape[0], f"camera {name!r}")
        except ActionImagesError as exc:
            raise RequestError("bad_calibration", str(exc)) from exc
    if len(given) == 1:  # half from the request, half from the file would mix two calibrations
        missing = "cam_to_world" if given == ["K"] else "K"
        raise RequestError(
            "missing_calibration",
            f"missing calibration for camera {name!r}: the request sends {given[0]} but no {missing}; "
            "send both, or neither to use the server's calibration file",
        )
    K = _array(cam["K"], f"cameras[{name!r}].K", (3, 3))
    c2w = _array(cam["cam_to_world"], f"cameras[{name!r}].cam_to_world", (4, 4))
    try:
        return Camera(K.astype(np.float64), c2w.astype(np.float64), img.shape[1], img.shape[0])
    except ActionImagesError as exc:
        raise RequestError("bad_calibration", f"camera {name!r}: {exc}") from exc


def _workspace(box: tuple[Any, Any] | None) -> tuple[np.ndarray, np.ndarray] | None:
    if box is None:
        return None
    try:
        low, high = (np.asarray(b, dtype=np.float64).reshape(3) for b in box)
    except (TypeError, ValueError) as exc:
        raise ActionImagesError(f"workspace must be (low xyz, high xyz) in metres, got {box!r}") from exc
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
        raise ActionImagesError(f"workspace needs finite low < high on every axis, got {box!r}")
    return low, high


def continuous_rotations(euler: np.ndarray, reference: np.ndarray, form: str) -> np.ndarray:
    """A plan's rotations (N, 3) Euler as (N, 3, 3) matrices or (N, 4) xyzw quaternions, each
    quaternion's sign chosen nearest the previous one's (the first: the current pose's), since
    q and -q are one rotation and a sign flip would be a jump to an interpolating controller."""
    from actionimages.codec.poses import euler_to_matrix, euler_to_quat

    finite = np.all(np.isfinite(euler), axis=-1)
    safe = np.where(finite[:, None], euler, 0.0)
    if form == "matrix":
        out = euler_to_matrix(safe)
        out[~finite] = np.nan
        return out
    quats, previous = euler_to_quat(safe), euler_to_quat(np.asarray(reference, dtype=np.float64))
    for j in range(len(quats)):
        if not finite[j]:
            quats[j] = np.nan
            continue
        if float(quats[j] @ previous) < 0:
            quats[j] = -quats[j]
        previous = quats[j]
    return quats


def parse_request(
    req: Any, num_views: int, calibration: Mapping[str, Camera] | None = None
) -> tuple[dict[str, Any], str, dict[str, int | None], dict[str, Any]]:
    """A wire request -> (policy observation, episode id, seeds, reply options).

    ``seeds`` is ``{"seed": the episode seed, "base_seed": the noise base seed}``, each None when
    the request leaves it to the server (0 and ``serve --seed``); ``eval --server`` sends both,
    so a remote evaluation draws the very noise an in-process one does. ``reply options`` are
    ``{"return_images": bool, "rotation": "euler" | "quaternion" | "matrix"}``.

    The observation is what the in-process policies take: ``{"images": {cam: uint8 (H, W, 3)},
    "cameras": {cam: Camera}, "ee_pose": (7,), "instruction": str}``. A request camera without ``K``
    and ``cam_to_world`` takes them from ``calibration`` ``{name: Camera}`` (the calibration file).
    """
    from actionimages.codec.poses import to_euler_actions

    if not isinstance(req, dict):
        raise RequestError("bad_request", f"a request is a map, got {type(req).__name__}")
    unknown = sorted(set(req) - REQUEST_FIELDS)
    if unknown:
        raise RequestError(
            "unknown_field", f"unknown request field(s) {unknown}; known: {sorted(REQUEST_FIELDS)}"
        )
    for key in ("episode_id", "instruction", "ee_pose", "cameras"):
        if key not in req:
            raise RequestError("missing_field", f"the request has no {key!r}")
    episode = req["episode_id"]
    if not isinstance(episode, str | int) or isinstance(episode, bool) or str(episode) == "":
        raise RequestError("bad_request", "episode_id must be a non-empty string or integer")
    if not isinstance(req["instruction"], str):
        raise RequestError("bad_request", "instruction must be a string")
    pose = _array(req["ee_pose"], "ee_pose", (None,))
    if pose.shape[0] not in (7, 8):
        raise RequestError(
            "bad_shape", f"ee_pose has {pose.shape[0]} values; expected 7 (Euler) or 8 (quaternion)"
        )
    try:
        pose7 = to_euler_actions(pose.astype(np.float64)[None])[0]
    except ActionImagesError as exc:
        raise RequestError("bad_request", f"ee_pose: {exc}") from exc
    rotation = req.get("rotation", "euler")
    if rotation not in ROTATION_FORMS:
        raise RequestError("bad_request", f"rotation must be one of {list(ROTATION_FORMS)}, got {rotation!r}")
    seeds = {key: req.get(key) for key in ("seed", "base_seed")}
    for key, value in seeds.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise RequestError("bad_request", f"{key} must be an integer")
    cams = req["cameras"]
    if not isinstance(cams, dict) or not cams:
        raise RequestError("bad_request", "cameras must be a non-empty map {name: {image, K, cam_to_world}}")
    if len(cams) < num_views:
        raise RequestError("bad_request", f"the model needs {num_views} cameras, the request has {len(cams)}")
    images, cameras = {}, {}
    for name, cam in cams.items():
        if not isinstance(name, str) or not isinstance(cam, dict):
            raise RequestError("bad_request", "cameras must map names to {image, K, cam_to_world}")
        extra = sorted(set(cam) - CAMERA_FIELDS)
        if extra:
            raise RequestError("unknown_field", f"camera {name!r}: unknown field(s) {extra}")
        if "image" not in cam:
            raise RequestError("missing_field", f"camera {name!r} has no image")
        img = _array(cam["image"], f"cameras[{name!r}].image", (None, None, 3), kinds="u")
        if img.dtype != np.uint8:
            raise RequestError("bad_request", f"cameras[{name!r}].image must be uint8, got {img.dtype}")
        cameras[name] = _camera(name, cam, img, calibration or {})
        images[name] = img
    obs = {"images": images, "cameras": cameras, "ee_pose": pose7, "instruction": req["instruction"]}
    reply_options = {"return_images": bool(req.get("return_images", False)), "rotation": rotation}
    return obs, str(episode), seeds, reply_options


class PolicyServer:
    """Serves one policy to any number of clients (one inference at a time).

    Args:
        model: a loaded :class:`~actionimages.model.WorldActionModel` (served as an
            :class:`~actionimages.policy.action_images.policy.ActionImagePolicy` with
            ``policy_options``), or a :class:`~actionimages.policy.base.ChunkedPolicy` of any
            registered kind (``build_policy(kind, checkpoint)``; ``policy_options`` must then be
            empty). Each episode plans with its own :meth:`~ChunkedPolicy.fresh` copy.
        host, port: where to listen (127.0.0.1 by default; another host needs ``token``).
        token: clients must send ``Authorization: Bearer <token>`` (or openpi's ``Api-Key <token>``).
        max_message_bytes: larger requests get a ``too_large`` error frame.
        calibration: ``{camera name: Camera}`` (:func:`~actionimages.calibrate.load_calibration`):
            request cameras that send no ``K`` / ``cam_to_world`` take them from here.
        workspace: ``(low (3,), high (3,))`` metres in the robot base frame: a request whose
            ``ee_pose`` lies outside gets an ``outside_workspace`` error frame (None: no check).
        control_hz: the control rate a plan's poses assume (one pose per control step),
            announced in the metadata.
        **policy_options: :class:`~actionimages.policy.action_images.policy.ActionImagePolicy`
            options (``num_steps``, ``guidance``, ``seed``, ``execute``, ``views``, ``mode``).
    """

    def __init__(
        self,
        model: Any,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
        checkpoint: str = "",
        calibration: Mapping[str, Camera] | None = None,
        workspace: tuple[Any, Any] | None = DEFAULT_WORKSPACE,
        control_hz: float = DEFAULT_CONTROL_HZ,
        **policy_options: Any,
    ) -> None:
        if host not in LOCAL_HOSTS and not token:
            raise ActionImagesError(
                f"refusing to listen on {host!r} without a token: anyone who reaches it could drive "
                "your robot; pass --token (or bind 127.0.0.1)"
            )
        self.host, self.port, self.token = host, int(port), token
        self.workspace = _workspace(workspace)
        if not (np.isfinite(control_hz) and control_hz > 0):
            raise ActionImagesError(f"control_hz must be a positive number, got {control_hz}")
        self.max_message_bytes = int(max_message_bytes)
        self.calibration = dict(calibration or {})
        from actionimages.policy.base import ChunkedPolicy

        if hasattr(model, "spec"):  # a world-action model: the action-image policy (bad options fail here)
            from actionimages.policy.action_images.policy import ActionImagePolicy

            probe = ActionImagePolicy(model, **policy_options)
        elif policy_options:
            raise ActionImagesError(f"options {sorted(policy_options)} belong to the policy, not the server")
        else:
            probe = model
        if not isinstance(probe, ChunkedPolicy):
            raise ActionImagesError(f"a {type(probe).__name__} cannot be served: it is not a ChunkedPolicy")
        self._new_policy = probe.fresh
        info = probe.serving_info()  # kind, model_config, num_views, image_size
        self.num_views = int(info["num_views"])
        self.image_size = tuple(int(v) for v in info["image_size"])  # (H, W) the model reads
        self.metadata = {
            "protocol_version": PROTOCOL_VERSION,
            "server": "actionimages",
            "checkpoint": checkpoint,
            "policy_kind": info["kind"],
            "model_config": info.get("model_config"),
            "num_views": self.num_views,
            "image_size": list(info["image_size"]),
            "horizon": probe.horizon,
            "default_execute": probe.execute,
            "action": {
                "poses": "absolute end-effector poses in the robot base frame",
                "format": "[x, y, z, rx, ry, rz, openness]: metres, Euler xyz (extrinsic) radians",
                "ee_pose_input": "7 values as above, or 8: [x, y, z, qx, qy, qz, qw, openness]",
                "openness": "0 closed .. 1 open",
                "continuity": "Euler angles unwrapped along the plan from the request's ee_pose (each "
                "within pi of the previous); request 'rotation': 'quaternion' (xyzw, sign-continuous) "
                "or 'matrix' for the same rotations in 'rotations'",
            },
            "request_fields": sorted(REQUEST_FIELDS),
            "calibrated_cameras": sorted(self.calibration),  # these may omit K and cam_to_world
            "max_message_bytes": self.max_message_bytes,
            "control_hz": float(control_hz),  # one planned pose per control step at this rate
            "workspace": None
            if self.workspace is None
            else {"low": list(self.workspace[0]), "high": list(self.workspace[1])},
        }
        self._lock = threading.Lock()  # one inference at a time: the model is not re-entrant
        self.clients = 0
        self.served = 0

    # ---------------------------------------------------------------- requests
    def answer(self, state: dict[str, Any], message: Any) -> dict[str, Any]:
        """One reply for one raw message (bytes); ``state`` is the connection's episode state."""
        if not isinstance(message, bytes):
            raise RequestError("bad_request", "send binary msgpack frames, not text")
        if len(message) > self.max_message_bytes:
            raise RequestError(
                "too_large", f"message of {len(message)} bytes is over the limit of {self.max_message_bytes}"
            )
        try:
            req = unpackb(message)
        except WireError as exc:
            raise RequestError("bad_message", str(exc)) from exc
        obs, episode, seeds, reply_options = parse_request(req, self.num_views, self.calibration)
        self._check_safe(obs)
        if state.get("episode") != episode:  # a new episode: fresh plan counter and seed
            policy = self._new_policy()
            if seeds["base_seed"] is not None and hasattr(policy, "base_seed"):  # sampling policies
                policy.base_seed = int(seeds["base_seed"])
            policy.set_seed(seeds["seed"] if seeds["seed"] is not None else 0)
            policy.reset(obs)
            state.update(episode=episode, policy=policy)
        policy = state["policy"]
        with self._lock:
            try:
                chunk = policy.replan(obs)
            except ActionImagesError as exc:
                raise RequestError("bad_request", str(exc)) from exc
        plan = getattr(policy, "last_plan", None) or {}
        actions = unwrap_plan(np.asarray(chunk.poses, dtype=np.float64), obs["ee_pose"])
        reply: dict[str, Any] = {
            "episode_id": episode,
            "replan": policy.stats()["replans"],
            "actions": actions,
            "valid": np.asarray(chunk.valid, dtype=bool),
            "views": list(plan["views"]),
            "timing": {k: float(v) for k, v in plan.get("timing", {}).items()},
        }
        if reply_options["rotation"] != "euler":
            reply["rotations"] = continuous_rotations(
                actions[:, 3:6], obs["ee_pose"][3:6], reply_options["rotation"]
            )
        if reply_options["return_images"] and "action_images" in plan:  # policies that plan in action images
            reply["action_images"] = {
                v: (np.clip(im, 0, 1) * 255).round().astype(np.uint8)
                for v, im in plan["action_images"].items()
            }
        self.served += 1
        return reply

    def _check_safe(self, obs: dict[str, Any]) -> None:
        """Refuse to plan from a pose outside the workspace or from images smaller than the model's."""
        if self.workspace is not None:
            low, high = self.workspace
            pos = np.asarray(obs["ee_pose"][:3], dtype=np.float64)
            if np.any(pos < low) or np.any(pos > high):
                raise RequestError(
                    "outside_workspace",
                    f"ee_pose position {np.round(pos, 3).tolist()} m is outside the workspace "
                    f"{low.tolist()}..{high.tolist()} (serve --workspace): a unit or frame mistake?",
                )
        h, w = self.image_size
        for name, img in obs["images"].items():
            if img.shape[0] < h or img.shape[1] < w:
                raise RequestError(
                    "bad_image_size",
                    f"camera {name!r} sends {img.shape[1]}x{img.shape[0]} pixels; the model reads {w}x{h} "
                    "(metadata image_size [H, W]), and a smaller image cannot be upsampled into a scene",
                )

    # ---------------------------------------------------------------- websocket
    def _authorised(self, connection: ServerConnection, request: Any) -> Any:
        if not self.token:
            return None
        got = request.headers.get("Authorization", "").encode()
        # "Bearer" is ours; "Api-Key" is what openpi's WebsocketClientPolicy(api_key=...) sends.
        for scheme in ("Bearer", "Api-Key"):
            if hmac.compare_digest(got, f"{scheme} {self.token}".encode()):
                return None
        return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")

    async def _handle(self, ws: ServerConnection) -> None:
        state: dict[str, Any] = {}
        self.clients += 1
        try:
            await ws.send(packb(self.metadata))
            async for message in ws:
                try:
                    reply = await asyncio.to_thread(self.answer, state, message)
                except RequestError as exc:
                    reply = {"error": {"code": exc.code, "message": str(exc)}}
                except Exception as exc:  # never let one request take the server down
                    log.exception("request failed")
                    reply = {"error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}
                await ws.send(packb(reply))
        except ConnectionClosed:
            pass
        finally:
            state.clear()  # the connection's episodes go with it
            self.clients -= 1

    async def serve(self, ready: Any = None, stop: Any = None) -> None:
        """Run until ``stop`` (an asyncio.Event) is set, or forever; ``ready(port)`` once listening."""
        async with serve(
            self._handle,
            self.host,
            self.port,
            max_size=self.max_message_bytes
            * 4,  # bigger frames close the connection; ours get an error frame
            process_request=self._authorised,
            compression=None,
        ) as server:
            port = server.sockets[0].getsockname()[1]
            self.port = port
            if ready is not None:
                ready(port)
            if stop is None:
                await asyncio.Future()
            else:
                await stop.wait()

    def run_in_thread(self) -> tuple[threading.Thread, Any]:
        """Start serving in a daemon thread (port 0 picks a free port); returns (thread, stop())."""
        started = threading.Event()
        loop = asyncio.new_event_loop()
        stop_event: list[asyncio.Event] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            ev = asyncio.Event()
            stop_event.append(ev)
            loop.run_until_complete(self.serve(ready=lambda _p: started.set(), stop=ev))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        if not started.wait(30):
            raise ActionImagesError("the policy server did not start within 30 s")

        def stop() -> None:
            loop.call_soon_threadsafe(stop_event[0].set)
            thread.join(10)

        return thread, stop
