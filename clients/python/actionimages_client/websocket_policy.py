"""A policy served by ``actionimages serve``, over a websocket (protocol: docs/DEPLOY.md).

    policy = WebsocketPolicy("127.0.0.1", 8000)          # reads the server's metadata frame
    out = policy.infer(request)                           # one plan: {"actions": (N, 7), "valid": (N,), ...}
    policy.reset(episode_id="ep-1")                       # then, every control step:
    target = policy.act(images, cameras, ee_pose, instruction)   # (7,) absolute target

``act`` runs the shared :class:`~actionimages_client.chunking.ChunkExecutor`: k poses of each plan,
then a new plan; optional temporal ensembling and per-step limits; every target inside the
workspace box and the gripper range; ``dry_run`` logs the targets and returns the current pose
instead, for a first run next to a real robot.

With ``prefetch=True`` the loop never waits on a plan it could have asked for earlier: the next
request goes out (in a background thread) while the current chunk still has ``prefetch_at``
targets to run, and when its plan arrives the poses whose time passed during inference (one per
control step executed since the request's observation) are dropped before the rest replace the
queue, blended with the old plan by the executor's ``ensemble`` when that is on. The plan's poses
are one control step apart at the server's ``control_hz``; ``act`` must then be called at that rate.

Failures are the client's own exceptions: :class:`ServerError` for an error frame (the connection
stays usable), :class:`ConnectionLost` when the server cannot be reached after ``reconnects``
attempts with exponential backoff. When no plan arrives in time, ``act`` holds the last target
(``hold_on_failure``, default on) and tries again at the next step, rather than raising in the
middle of a motion.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from actionimages_client.chunking import ChunkExecutor
from actionimages_client.msgpack_numpy import PROTOCOL_VERSION, READABLE_VERSIONS, packb, unpackb

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """The server answered with an error frame (``code``: e.g. ``bad_request``, ``too_large``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class ConnectionLost(ConnectionError):
    """The server could not be reached (or stopped answering) after every reconnection attempt."""


class WebsocketPolicy:
    """Client of one policy server.

    Args:
        host, port: the server (``actionimages serve`` binds 127.0.0.1:8000 by default).
        token: the server's token, when it was started with one (sent as ``Authorization: Bearer``).
        execute: k poses executed per plan in :meth:`act` (default: the server's default k).
        ensemble, max_step_m, max_step_rad: :class:`ChunkExecutor` options for :meth:`act`.
        workspace: ``(low xyz, high xyz)`` metres: targets are clipped into it (default: the server's
            announced workspace; None: no box).
        gripper: ``(low, high)`` openness range targets are clipped into (default 0..1).
        dry_run: :meth:`act` logs each target and returns the current pose instead.
        timeout: seconds to wait for the connection and for each answer.
        reconnects: attempts to reconnect (backoff 0.5, 1, 2, ... s, at most 8 s) before
            :class:`ConnectionLost`.
        hold_on_failure: :meth:`act` returns the last target when no plan arrives (a timeout or a
            lost connection) instead of raising; ``holds`` counts such steps.
        prefetch: request the next plan while the current chunk runs (see the module legend).
        prefetch_at: targets left in the queue when the next request goes out (default: half of
            k, at least 1); set it to the inference latency in control steps.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        execute: int | None = None,
        ensemble: float | None = None,
        max_step_m: float | None = None,
        max_step_rad: float | None = None,
        dry_run: bool = False,
        timeout: float = 60.0,
        workspace: Any = "server",
        gripper: tuple[float, float] | None = (0.0, 1.0),
        reconnects: int = 5,
        hold_on_failure: bool = True,
        prefetch: bool = False,
        prefetch_at: int | None = None,
    ) -> None:
        if ":" in host and not host.startswith(("ws://", "wss://", "[")):
            host = f"[{host}]"  # an IPv6 address
        self.uri = host if host.startswith("ws://") or host.startswith("wss://") else f"ws://{host}:{port}"
        self._headers = {"Authorization": f"Bearer {token}"} if token else None
        self.timeout = float(timeout)
        self.reconnects, self.hold_on_failure = int(reconnects), bool(hold_on_failure)
        self._ws: Any = None
        self._connect_with_backoff()
        horizon = int(self.metadata["horizon"])
        k = int(execute) if execute is not None else int(self.metadata["default_execute"])
        if isinstance(workspace, str) and workspace == "server":
            box = self.metadata.get("workspace")
            workspace = None if not box else (box["low"], box["high"])
        self.executor = ChunkExecutor(
            k, horizon, 1, max_step_m, max_step_rad, ensemble, workspace=workspace, gripper=gripper
        )
        self.holds = 0
        self.timing: dict[str, float] = {}  # the last request's client-side seconds (see infer)
        self.prefetch = bool(prefetch)
        self.prefetch_at = max(1, k // 2) if prefetch_at is None else int(prefetch_at)
        if self.prefetch_at < 0:
            raise ValueError(f"prefetch_at must be >= 0, got {prefetch_at}")
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[Future, int] | None = None  # (the request in flight, its step)
        self.dropped = 0  # planned poses dropped because their time passed during inference
        self.waits = 0  # steps that had to wait for a plan (nothing left to execute)
        self.dry_run = bool(dry_run)
        self.episode_id: str = uuid.uuid4().hex
        self.seed: int | None = None
        self.base_seed: int | None = None
        self.last: dict[str, Any] | None = None
        self.dry_log: list[np.ndarray] = []

    # ------------------------------------------------------------------ connection
    def _connect(self) -> None:
        self._ws = connect(
            self.uri, additional_headers=self._headers, max_size=None, open_timeout=self.timeout
        )
        metadata = unpackb(self._ws.recv(timeout=self.timeout))
        if metadata.get("protocol_version") not in READABLE_VERSIONS:
            raise ServerError(
                "protocol",
                f"server speaks protocol {metadata.get('protocol_version')}, client {PROTOCOL_VERSION}",
            )
        self.metadata: dict[str, Any] = metadata

    def _connect_with_backoff(self) -> None:
        """(Re)connect, retrying ``reconnects`` times with exponential backoff; the server's
        per-connection episode state starts afresh (its plan counter and noise seed with it)."""
        self.close()
        delay, last = 0.5, None
        for attempt in range(self.reconnects + 1):
            try:
                self._connect()
                return
            except ServerError:
                raise
            except (OSError, TimeoutError, ConnectionClosed) as exc:  # refused, reset, DNS, handshake
                last = exc
                if attempt < self.reconnects:
                    log.warning("cannot reach %s (%s); retrying in %.1f s", self.uri, exc, delay)
                    time.sleep(delay)
                    delay = min(8.0, delay * 2)
        raise ConnectionLost(
            f"cannot reach the policy server at {self.uri} after {self.reconnects + 1} attempt(s): {last}"
        )

    # ------------------------------------------------------------------ raw protocol
    def infer(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request (see docs/DEPLOY.md) and return the server's answer.

        Raises :class:`ServerError` on an error frame (the connection stays usable) and
        :class:`ConnectionLost` when the server is gone and does not come back. A dropped
        connection (a server restart) is reopened and the request sent again; a request that gets
        no answer within ``timeout`` closes the connection (its late answer must not be taken for
        the next one's) and raises :class:`ConnectionLost`."""
        if self._ws is None:
            self._connect_with_backoff()
        t0 = time.perf_counter()
        message = packb(request)
        t1 = time.perf_counter()
        try:
            self._ws.send(message)
            raw = self._ws.recv(timeout=self.timeout)
        except ConnectionClosed:
            log.warning("the connection to %s dropped; reconnecting", self.uri)
            self._connect_with_backoff()
            try:
                self._ws.send(packb(request))
                raw = self._ws.recv(timeout=self.timeout)
            except (ConnectionClosed, TimeoutError, OSError) as exc:
                self.close()
                raise ConnectionLost(f"the policy server at {self.uri} stopped answering: {exc}") from exc
        except TimeoutError as exc:
            self.close()
            raise ConnectionLost(f"no answer from {self.uri} within {self.timeout:g} s") from exc
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"the connection to {self.uri} failed: {exc}") from exc
        t2 = time.perf_counter()
        reply = unpackb(raw)
        # where a plan's time goes, client side: packing, the round trip (the server's own share is
        # reply["timing"]["total"]; the rest is the wire), unpacking
        self.timing = {"pack": t1 - t0, "round_trip": t2 - t1, "unpack": time.perf_counter() - t2}
        if "error" in reply:
            err = reply["error"]
            raise ServerError(str(err.get("code", "error")), str(err.get("message", "")))
        return reply

    def close(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, None
        ws, self._ws = getattr(self, "_ws", None), None
        if ws is not None:
            try:
                ws.close()
            except (ConnectionClosed, OSError):
                pass

    def __enter__(self) -> WebsocketPolicy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ closed loop
    def reset(
        self, episode_id: str | None = None, seed: int | None = None, base_seed: int | None = None
    ) -> None:
        """Start an episode (a new id resets the server's state for it); ``seed`` and ``base_seed``
        (the episode's and the noise's, as ``eval --seed`` derives them) make the server's plans
        those of an in-process evaluation; by default the server uses 0 and its ``--seed``."""
        if getattr(self, "_pending", None) is not None:  # a plan for the last episode: never executed
            try:
                self._pending[0].result(timeout=self.timeout)
            except Exception:  # noqa: BLE001 - its failure belongs to the episode that asked
                pass
            self._pending = None
        self.episode_id = episode_id or uuid.uuid4().hex
        self.seed, self.base_seed = seed, base_seed
        self.executor.reset()
        self.dry_log = []

    def request(
        self,
        images: dict[str, np.ndarray],
        cameras: dict[str, dict[str, np.ndarray]] | None,
        ee_pose: np.ndarray,
        instruction: str,
        return_images: bool = False,
    ) -> dict[str, Any]:
        """The wire request for one observation: every camera of ``images``, with its ``K`` and
        ``cam_to_world`` from ``cameras`` (``{name: {"K", "cam_to_world"}}``) where given; a camera
        not in ``cameras`` (or ``cameras=None``) is calibrated by the server's calibration file."""
        cameras = cameras or {}
        wire: dict[str, Any] = {}
        for name, image in images.items():
            wire[name] = {"image": np.asarray(image)}
            if name in cameras:
                wire[name]["K"] = np.asarray(cameras[name]["K"], dtype=np.float64)
                wire[name]["cam_to_world"] = np.asarray(cameras[name]["cam_to_world"], dtype=np.float64)
        req: dict[str, Any] = {
            "episode_id": self.episode_id,
            "instruction": str(instruction),
            "ee_pose": np.asarray(ee_pose, dtype=np.float64),
            "cameras": wire,
            "return_images": bool(return_images),
        }
        if self.seed is not None:
            req["seed"] = int(self.seed)
        if self.base_seed is not None:
            req["base_seed"] = int(self.base_seed)
        return req

    def act(
        self,
        images: dict[str, np.ndarray],
        cameras: dict[str, dict[str, np.ndarray]] | None,
        ee_pose: np.ndarray,
        instruction: str,
    ) -> np.ndarray:
        """The next absolute target (7,); asks the server for a new plan when the last one is used up.

        With ``hold_on_failure`` a plan that does not arrive (:class:`ConnectionLost`) holds the last
        target (or the current pose) for this step; the next step asks again."""
        if self.prefetch:
            return self._act_prefetching(images, cameras, ee_pose, instruction)
        if self.executor.empty:
            try:
                self.last = self.infer(self.request(images, cameras, ee_pose, instruction))
            except ConnectionLost as exc:
                return self._hold(ee_pose, exc)
            self.executor.load(self.last["actions"], self.last["valid"], ee_pose)
        return self._next_target(ee_pose)

    def _next_target(self, ee_pose: np.ndarray) -> np.ndarray:
        """The executor's next target, or with ``dry_run`` the current pose (the target logged)."""
        target, _ = self.executor.pop()
        if self.dry_run:
            log.info("dry run: target %s not sent", np.round(target, 4).tolist())
            self.dry_log.append(target)
            return np.asarray(ee_pose, dtype=np.float64)[:7].copy()
        return target

    def _hold(self, ee_pose: np.ndarray, exc: Exception) -> np.ndarray:
        if not self.hold_on_failure:
            raise exc
        self.holds += 1
        log.warning("no plan (%s): holding the last target", exc)
        held = self.executor.last_target
        return (held if held is not None else np.asarray(ee_pose, dtype=np.float64)[:7]).copy()

    def _act_prefetching(
        self,
        images: dict[str, np.ndarray],
        cameras: dict[str, dict[str, np.ndarray]] | None,
        ee_pose: np.ndarray,
        instruction: str,
    ) -> np.ndarray:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="actionimages-plan")
        if self._pending is None and self.executor.remaining <= self.prefetch_at:
            request = self.request(images, cameras, ee_pose, instruction)
            self._pending = (self._pool.submit(self.infer, request), self.executor.steps)
        if self._pending is not None and (self._pending[0].done() or self.executor.empty):
            future, asked_at = self._pending
            if not future.done():
                self.waits += 1  # nothing left to run: this step waits for the plan
            self._pending = None
            try:
                reply = future.result(timeout=self.timeout)
            except ConnectionLost as exc:
                return self._hold(ee_pose, exc)
            self.last = reply
            late = self.executor.steps - asked_at  # poses whose time passed during inference
            self.dropped += min(late, len(reply["actions"]))
            if late < len(reply["actions"]):
                self.executor.load(reply["actions"][late:], reply["valid"][late:], ee_pose)
            elif self.executor.empty:  # the whole plan is stale: hold and ask again
                return self._hold(ee_pose, ConnectionLost(f"a plan arrived {late} steps late"))
        if self.executor.empty:
            return self._hold(ee_pose, ConnectionLost("no plan yet"))
        return self._next_target(ee_pose)
