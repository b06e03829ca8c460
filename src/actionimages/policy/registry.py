"""The one table of policy kinds: what `eval`, `serve`, `export`, the evaluator and `baseline
train` read.

A policy kind is one folder under ``actionimages/policy/`` (its policy class, its network, its
configuration) whose ``__init__`` registers it with :func:`policy_kind`, a decorator on the
function that builds it; the import at the bottom of this module lists the folders. Builders import
lazily, so reading the table costs no torch import and worker processes build only what they run.
Each kind may say how it recognises its own checkpoints (``recognises``), which is how
:func:`detect_kind` tells a world-model folder from a baseline run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actionimages.errors import ActionImagesError
from actionimages.policy.base import Policy


@dataclass(frozen=True)
class PolicyKind:
    """A registered policy kind.

    Attributes:
        name: the ``--policy`` name and the ``kind`` in results.
        build: ``(checkpoint, options) -> Policy``.
        needs_checkpoint: whether ``build`` needs a checkpoint directory.
        baseline_net: for kinds ``actionimages baseline train`` trains: ``(arch) -> nn.Module``.
        in_cli: offered by ``actionimages eval --policy`` (the ladder's oracles are not).
        help: one line for ``--help`` and docs.
        recognises: ``(path) -> bool``: whether ``path`` is a checkpoint of this kind (None: the
            kind is never detected from a path; give ``--policy``).
        resolve: ``(path) -> (what build loads, training step or None)``: e.g. a world-model run's
            exported ``model/`` (None: the path itself, step unknown).
        plans: whether the action-image planning options (``PlanningConfig``, the noise seed)
            apply; other kinds take only the chunk options (``execute``, ``views``).
    """

    name: str
    build: Callable[[str | None, dict[str, Any]], Policy]
    needs_checkpoint: bool = True
    baseline_net: Callable[[dict[str, Any]], Any] | None = None
    in_cli: bool = True
    help: str = ""
    recognises: Callable[[Path], bool] | None = None
    resolve: Callable[[str], tuple[str, int | None]] | None = None
    plans: bool = False


POLICIES: dict[str, PolicyKind] = {}


def register_policy(kind: PolicyKind) -> PolicyKind:
    if kind.name in POLICIES:
        raise ActionImagesError(f"policy kind {kind.name!r} is already registered")
    POLICIES[kind.name] = kind
    return kind


def policy_kind(name: str, **attributes: Any) -> Callable:
    """Decorator registering the decorated ``build(checkpoint, options) -> Policy`` as policy kind
    ``name``; ``attributes`` are :class:`PolicyKind`'s other fields."""

    def register(build: Callable[[str | None, dict[str, Any]], Policy]) -> Callable:
        register_policy(PolicyKind(name, build, **attributes))
        return build

    return register


def baseline_kind(name: str, net: str, help: str) -> PolicyKind:
    """Register a baseline kind (trained by ``baseline train``, run by ``policy/baseline``): its
    network is ``net`` (``"module:Class"``, built from the run's ``arch``), its checkpoints are the
    runs whose ``baseline.json`` names ``name``."""
    module, cls = net.split(":")

    def build_net(arch: dict[str, Any]) -> Any:
        import importlib

        return getattr(importlib.import_module(module), cls)(**arch)

    def build(checkpoint: str | None, options: dict[str, Any]) -> Policy:
        from actionimages.policy.baseline import load_baseline_policy

        return load_baseline_policy(checkpoint, **options)

    def resolve(path: str) -> tuple[str, int | None]:
        return str(Path(path).resolve()), (_baseline_meta(Path(path)) or {}).get("step")

    build.__module__ = module.rsplit(".", 1)[0]  # the kind's folder (the registry walk checks it)
    recognises = lambda path: baseline_meta_kind(Path(path)) == name  # noqa: E731
    kind = PolicyKind(name, build, baseline_net=build_net, help=help, recognises=recognises, resolve=resolve)
    return register_policy(kind)


def get_policy_kind(name: str) -> PolicyKind:
    if name not in POLICIES:
        raise ActionImagesError(f"unknown policy kind {name!r}; choose from {sorted(POLICIES)}")
    return POLICIES[name]


def build_policy(name: str, checkpoint: str | None = None, **options: Any) -> Policy:
    """Instantiate policy kind ``name`` (from ``checkpoint`` where it needs one)."""
    kind = get_policy_kind(name)
    if kind.needs_checkpoint and checkpoint is None:
        raise ActionImagesError(f"policy kind {name!r} needs a checkpoint")
    policy = kind.build(checkpoint, options)
    if not isinstance(policy, Policy):
        raise ActionImagesError(f"policy kind {name!r} built a {type(policy).__name__}, not a Policy")
    return policy


def detect_kind(checkpoint: str | Path) -> str:
    """The kind whose ``recognises`` accepts ``checkpoint`` (a clear error when none or several do)."""
    path = Path(checkpoint)
    if not path.exists():
        raise ActionImagesError(f"checkpoint {path} does not exist")
    found = [k.name for k in POLICIES.values() if k.recognises is not None and k.recognises(path)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ActionImagesError(f"{path} looks like a checkpoint of several kinds {found}: give --policy")
    meta = path / "baseline.json"
    if meta.is_file():
        raise ActionImagesError(f"{meta}: unknown baseline kind {baseline_meta_kind(path)!r}")
    raise ActionImagesError(
        f"{path} is not a checkpoint of any policy kind ({', '.join(k for k in POLICIES)}): expected a "
        "world-model folder (config.json), a training run, or a baseline run (baseline.json)"
    )


def baseline_meta_kind(path: Path) -> str | None:
    """The ``kind`` a baseline run's ``baseline.json`` names, or None (no such file, or unreadable)."""
    return (_baseline_meta(Path(path)) or {}).get("kind")


def _baseline_meta(path: Path) -> dict[str, Any] | None:
    """A baseline run's ``baseline.json`` as a dict; None when missing, unreadable or not a map."""
    meta = path / "baseline.json"
    try:
        doc = json.loads(meta.read_text()) if meta.is_file() else None
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def baseline_kinds() -> tuple[str, ...]:
    """The kinds ``actionimages baseline train`` trains."""
    return tuple(n for n, k in POLICIES.items() if k.baseline_net is not None)


def cli_kinds() -> tuple[str, ...]:
    return tuple(n for n, k in POLICIES.items() if k.in_cli)


# The kinds, one folder each; importing a folder registers its kinds (order: the CLI's).
from actionimages.policy import expert, action_images, bc, lowdim, remote  # noqa: E402, F401, I001
