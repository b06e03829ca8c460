"""Oracle plan sources for the action-image policy: the scripted expert's own future as action images.

:class:`OracleActionImagePolicy` is an :class:`~actionimages.policy.action_images.policy.ActionImagePolicy`
whose action video is not generated: at each replanning call it looks the scripted expert ahead
F - 1 frames in the live sim (recording the measured tool pose after each frame, exactly as
demonstrations record actions, see ``actionimages.sim.rollout``), rewinds the sim exactly, and draws
those poses with the training pipeline's codec (``observation_sample(..., actions=...)``), optionally
through the model's VAE. Decoding and receding-horizon execution are the policy's own, so the rungs
``expert -> codec -> autoencoder -> model`` differ in one stage each.

The sim state is rewound with :func:`snapshot_env` / :func:`restore_env` (a full ``MjData`` copy plus
the env's own counters), the expert with :func:`expert_state` / :func:`set_expert_state`.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from actionimages.errors import ActionImagesError
from actionimages.policy.action_images.policy import ActionImagePolicy
from actionimages.policy.observation import observation_sample, select_views

if TYPE_CHECKING:
    from actionimages.sim.tasks import TaskState


# ------------------------------------------------------------------ exact rewind
@dataclass
class SimSnapshot:
    """Everything a sim env's future depends on: the whole ``MjData`` and the env's own counters."""

    data: Any  # mujoco.MjData (a full copy: state, warm start, contacts, derived quantities)
    q_cmd: np.ndarray  # the env's last IK solution (the next IK starts from it)
    steps: int
    task_state: TaskState  # the episode's task state (by reference)


def _base(env: Any) -> Any:
    return getattr(env, "unwrapped", env)


def snapshot_env(env: Any) -> SimSnapshot:
    """A snapshot of an ``actionimages.sim`` env that :func:`restore_env` rewinds to bit-exactly."""
    import mujoco

    env = _base(env)
    data = mujoco.MjData(env.model)
    mujoco.mj_copyData(data, env.model, env.data)
    # task_state is kept by reference: steps only read it, and the expert's plans hold its arrays
    return SimSnapshot(data, env._q_cmd.copy(), int(env.steps), env.task_state)


def restore_env(env: Any, snap: SimSnapshot) -> None:
    """Rewind ``env`` to ``snap`` in place (``env.data`` stays the same object)."""
    import mujoco

    env = _base(env)
    mujoco.mj_copyData(env.data, env.model, snap.data)
    env._q_cmd = snap.q_cmd.copy()
    env.steps = snap.steps
    env.task_state = snap.task_state


def expert_state(expert: Any) -> dict[str, Any]:
    """The scripted expert's internal state (waypoint index, command pose, counters), deep-copied."""
    return {k: copy.deepcopy(v) for k, v in vars(expert).items() if k != "env"}


def set_expert_state(expert: Any, state: dict[str, Any]) -> None:
    """Put a state from :func:`expert_state` back (copied, so the state can be reused)."""
    vars(expert).update(copy.deepcopy(state))


def expert_future(
    env: Any, expert: Any, frames: int, repeat: int = 1
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Look the scripted expert ahead ``(frames - 1) * repeat`` control steps, then rewind exactly.

    Returns ``poses`` (frames - 1, 7): the measured tool pose after every ``repeat``-th step with the
    gripper command of that step (the demonstrations' action convention), and the expert's states
    after 0, 1, ..., ``(frames - 1) * repeat`` steps. Env and expert end as they started.
    """
    if frames < 2 or repeat < 1:
        raise ActionImagesError(f"need frames >= 2 and repeat >= 1, got {frames} and {repeat}")
    base = _base(env)
    snap, start = snapshot_env(base), expert_state(expert)
    states, poses = [start], []
    rendering = base.render_images_enabled
    base.render_images_enabled = False  # the look-ahead needs poses, not pictures
    try:
        with warnings.catch_warnings():
            # clipped / unreachable targets are the expert's business here, not the rollout's
            warnings.simplefilter("ignore")
            for step in range(1, (frames - 1) * repeat + 1):
                action = np.asarray(expert.act(None), dtype=np.float64)
                base.step(action)
                states.append(expert_state(expert))
                if step % repeat == 0:
                    pose = base.ee_pose()
                    pose[6] = action[6]
                    poses.append(pose)
    finally:
        base.render_images_enabled = rendering
        restore_env(base, snap)
        set_expert_state(expert, start)
    return np.stack(poses), states


def autoencode(model: Any, video: torch.Tensor, keep_first: bool = True) -> torch.Tensor:
    """Videos (B, V, 3, F, H, W) in [-1, 1] through the model's latent space (encode, decode).

    Whole clips per view, as training encodes them. ``keep_first`` pastes frame 0 back exactly, as
    ``generate`` does for the given first frame in ``joint`` mode.
    """
    b, v = video.shape[:2]
    clips = video.flatten(0, 1).to(model.device)  # (B·V, 3, F, H, W)
    out = model.latent_space.decode(model.latent_space.encode(clips))
    out = out.unflatten(0, (b, v)).to(video.device, torch.float32)
    if keep_first:
        out[:, :, :, :1] = video[:, :, :, :1]
    return out


# ------------------------------------------------------------------ the policy
class OracleActionImagePolicy(ActionImagePolicy):
    """The action-image policy with the scripted expert's future as its plan source.

    Args:
        model: the world-action model; only its config (size, views, blob width, horizon) and, with
            ``through_vae``, its latent space are used.
        through_vae: pass the drawn action video through the VAE before decoding (the
            ``autoencoder`` rung); else decode the codec's drawing directly (the ``codec`` rung).
        **options: as :class:`ActionImagePolicy` (``execute``, ``views``, ``repeat``, ``seed``, ...).

    Needs ``attach(env)`` (the evaluator calls it) before ``reset``.
    """

    def __init__(self, model: Any, through_vae: bool = False, **options: Any) -> None:
        super().__init__(model, **options)
        self.through_vae = bool(through_vae)
        self._env: Any = None
        self._expert: Any = None
        self._ahead: list[dict[str, Any]] = []  # expert states after 0..(F-1)·repeat look-ahead steps
        self._plan_step = 0  # env step count at the last plan
        self._truth: np.ndarray | None = None  # the last look-ahead (F, 7)
        self._errors: list[float] = []  # per plan: median decoded-vs-drawn position error (mm)

    def attach(self, env: Any) -> None:
        """Bind to the sim env (the look-ahead reads and rewinds its state)."""
        self._env = _base(env)

    def reset(self, obs: dict[str, Any]) -> None:
        super().reset(obs)
        if self._env is None:
            raise ActionImagesError("OracleActionImagePolicy: call attach(env) before reset(obs)")
        from actionimages.sim import scripted_expert

        self._expert = scripted_expert(self._env)
        self._ahead, self._plan_step = [], int(self._env.steps)
        self._truth, self._errors = None, []

    def expert_plan(self, obs: dict[str, Any]) -> np.ndarray:
        """The expert's next F poses (F, 7) from now; row 0 is the current pose ``obs["ee_pose"]``."""
        if self._expert is None:
            raise ActionImagesError("OracleActionImagePolicy: plan() before reset()")
        env = self._env
        if self._ahead:
            # The expert did not act while the last plan ran; it is where its own look-ahead was
            # after as many steps as were executed since.
            done = int(env.steps) - self._plan_step
            set_expert_state(self._expert, self._ahead[min(max(done, 0), len(self._ahead) - 1)])
        future, self._ahead = expert_future(env, self._expert, self.cfg.num_frames, self.repeat)
        self._plan_step = int(env.steps)
        self._truth = np.concatenate([np.asarray(obs["ee_pose"], dtype=np.float64)[None, :7], future])
        return self._truth

    def plan(self, obs: dict[str, Any]) -> dict[str, Any]:
        """:meth:`ActionImagePolicy.plan` plus ``"truth"`` (F, 7), the drawn poses, and its decode error."""
        plan = super().plan(obs)
        truth = self._truth
        assert truth is not None  # action_video() ran the look-ahead
        plan["truth"] = truth
        acts, valid = plan["actions"][1:], plan["valid"][1:]
        ok = valid & np.all(np.isfinite(acts), axis=1)
        if ok.any():
            err = np.linalg.norm(acts[ok, :3] - truth[1:][ok, :3], axis=1)
            self._errors.append(float(np.median(err)) * 1000.0)
        return plan

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["plan_error_mm"] = [round(x, 3) for x in self._errors]  # decoded vs drawn, frames 1..F-1
        return out

    @torch.no_grad()
    def action_video(self, obs: dict[str, Any], batch: dict[str, Any], seed: int) -> torch.Tensor:
        """The expert's future drawn as the training pipeline draws actions: (1, V, 3, F, H, W) in [-1, 1]."""
        cfg = self.cfg
        views = select_views(obs, self.views, cfg.num_views)
        sample = observation_sample(
            obs, views, cfg.num_frames, cfg.height, cfg.width,
            sigma_frac=cfg.action_sigma_frac, actions=self.expert_plan(obs),
        )  # fmt: skip
        video = sample["action_images"][None]
        return autoencode(self.model, video) if self.through_vae else video
