"""A policy served by ``actionimages serve``, driven through the thin client (``eval --server``).

The plans come from the server; execution is the same :class:`ChunkExecutor` the in-process
policies use, so against a server started with the same checkpoint, seed and options, an
evaluation gives the same actions and the same success, seed for seed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import numpy as np

from actionimages.codec.camera import as_camera
from actionimages.errors import ActionImagesError
from actionimages.policy.base import Chunk, ChunkedPolicy


class RemotePolicy(ChunkedPolicy):
    """Plans from a policy server at ``url`` (``ws://HOST:PORT``).

    Args:
        url: the server.
        token: its token, if it has one.
        execute: k (default: the server's default).
        timeout: seconds per answer.
        seed: the noise base seed sent with each episode (``eval --seed``), so the server samples
            what an in-process evaluation with that seed samples; None: the server's ``--seed``.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        execute: int | None = None,
        timeout: float = 120.0,
        seed: int | None = None,
    ):
        from actionimages_client import WebsocketPolicy

        parsed = urlparse(url)
        if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
            raise ActionImagesError(f"--server must look like ws://HOST:PORT, got {url!r}")
        from actionimages_client import ConnectionLost

        try:  # an evaluation fails fast (no retry); the executor limits nothing the in-process one does not
            self.client = WebsocketPolicy(
                url, token=token, execute=execute, timeout=timeout, reconnects=0, workspace=None, gripper=None
            )
        except ConnectionLost as exc:
            raise ActionImagesError(str(exc)) from exc
        except OSError as exc:
            raise ActionImagesError(f"cannot reach the policy server at {url}: {exc}") from exc
        meta = self.client.metadata
        # the client's own executor: one executor per remote policy, as on a robot
        super().__init__(self.client.executor.execute, int(meta["horizon"]), executor=self.client.executor)
        self.url = url
        self.base_seed = None if seed is None else int(seed)
        self._seed: int | None = None

    def set_seed(self, seed: int) -> None:
        self._seed = int(seed)

    def reset(self, obs: dict[str, Any]) -> None:
        super().reset(obs)
        self.client.reset(seed=self._seed, base_seed=self.base_seed)

    def plan_chunk(self, obs: dict[str, Any]) -> Chunk:
        cams = {n: as_camera(c) for n, c in obs["cameras"].items()}
        cams = {n: {"K": c.K, "cam_to_world": c.cam_to_world} for n, c in cams.items()}
        reply = self.client.infer(
            self.client.request(obs["images"], cams, np.asarray(obs["ee_pose"]), obs.get("instruction", ""))
        )
        self.last_reply = reply
        return Chunk(reply["actions"], reply["valid"])
