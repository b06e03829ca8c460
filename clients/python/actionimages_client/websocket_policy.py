"""A policy served by ``actionimages serve``, over a websocket (protocol: docs/DEPLOY.md).

    policy = WebsocketPolicy("127.0.0.1", 8000)          # reads the server's metadata frame
    out = policy.infer(request)                           # one plan: {"actions": (N, 7), "valid": (N,), ...}
    policy.reset(episode_id="ep-1")                       # then, every control step:
    target = policy.act(images, cameras, ee_pose, instruction)   # (7,) absolute target

``act`` runs the shared :class:`~actionimages_client.chunking.ChunkExecutor`: k poses of each plan,
then a new plan; optional temporal ensembling and per-step limits; ``dry_run`` logs the targets and
returns the current pose instead, for a first run next to a real robot.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from actionimages_client.chunking import ChunkExecutor
from actionimages_client.msgpack_numpy import PROTOCOL_VERSION, packb, unpackb

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """The server answered with an error frame (``code``: e.g. ``bad_request``, ``too_large``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class WebsocketPolicy:
    """Client of one policy server.

    Args:
        host, port: the server (``actionimages serve`` binds 127.0.0.1:8000 by default).
        token: the server's token, when it was started with one (sent as ``Authorization: Bearer``).
        execute: k poses executed per plan in :meth:`act` (default: the server's default k).
        ensemble, max_step_m, max_step_rad: :class:`ChunkExecutor` options for :meth:`act`.
        dry_run: :meth:`act` logs each target and returns the current pose instead.
        timeout: seconds to wait for the connection and for each answer.
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
    ) -> None:
        self.uri = host if host.startswith("ws://") or host.startswith("wss://") else f"ws://{host}:{port}"
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.timeout = float(timeout)
        self._ws = connect(self.uri, additional_headers=headers, max_size=None, open_timeout=timeout)
        self.metadata: dict[str, Any] = unpackb(self._ws.recv(timeout=timeout))
        if self.metadata.get("protocol_version") != PROTOCOL_VERSION:
            raise ServerError(
                "protocol",
                f"server speaks protocol {self.metadata.get('protocol_version')}, client {PROTOCOL_VERSION}",
            )
        horizon = int(self.metadata["horizon"])
        k = int(execute) if execute is not None else int(self.metadata["default_execute"])
        self.executor = ChunkExecutor(k, horizon, 1, max_step_m, max_step_rad, ensemble)
        self.dry_run = bool(dry_run)
        self.episode_id: str = uuid.uuid4().hex
        self.seed: int | None = None
        self.last: dict[str, Any] | None = None
        self.dry_log: list[np.ndarray] = []

    # ------------------------------------------------------------------ raw protocol
    def infer(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request (see docs/DEPLOY.md) and return the server's answer.

        Raises :class:`ServerError` on an error frame (the connection stays usable)."""
        self._ws.send(packb(request))
        reply = unpackb(self._ws.recv(timeout=self.timeout))
        if "error" in reply:
            err = reply["error"]
            raise ServerError(str(err.get("code", "error")), str(err.get("message", "")))
        return reply

    def close(self) -> None:
        try:
            self._ws.close()
        except ConnectionClosed:
            pass

    def __enter__(self) -> WebsocketPolicy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ closed loop
    def reset(self, episode_id: str | None = None, seed: int | None = None) -> None:
        """Start an episode (a new id resets the server's state for it)."""
        self.episode_id = episode_id or uuid.uuid4().hex
        self.seed = seed
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
        return req

    def act(
        self,
        images: dict[str, np.ndarray],
        cameras: dict[str, dict[str, np.ndarray]] | None,
        ee_pose: np.ndarray,
        instruction: str,
    ) -> np.ndarray:
        """The next absolute target (7,); asks the server for a new plan when the last one is used up."""
        if self.executor.empty:
            self.last = self.infer(self.request(images, cameras, ee_pose, instruction))
            self.executor.load(self.last["actions"], self.last["valid"], ee_pose)
        target, _ = self.executor.pop()
        if self.dry_run:
            log.info("dry run: target %s not sent", np.round(target, 4).tolist())
            self.dry_log.append(target)
            return np.asarray(ee_pose, dtype=np.float64)[:7].copy()
        return target
