"""The one table of policy kinds: what `eval --policy`, the evaluator and `baseline train` read.

A new policy is one module (a :class:`~actionimages.policy.base.Policy` subclass) plus one
:func:`register_policy` call here. Builders import lazily, so reading the table costs no torch
import and worker processes build only what they run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    """

    name: str
    build: Callable[[str | None, dict[str, Any]], Policy]
    needs_checkpoint: bool = True
    baseline_net: Callable[[dict[str, Any]], Any] | None = None
    in_cli: bool = True
    help: str = ""


POLICIES: dict[str, PolicyKind] = {}


def register_policy(kind: PolicyKind) -> PolicyKind:
    if kind.name in POLICIES:
        raise ActionImagesError(f"policy kind {kind.name!r} is already registered")
    POLICIES[kind.name] = kind
    return kind


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


def baseline_kinds() -> tuple[str, ...]:
    """The kinds ``actionimages baseline train`` trains."""
    return tuple(n for n, k in POLICIES.items() if k.baseline_net is not None)


def cli_kinds() -> tuple[str, ...]:
    return tuple(n for n, k in POLICIES.items() if k.in_cli)


# ------------------------------------------------------------------ the registered kinds
def _expert(checkpoint: str | None, options: dict[str, Any]) -> Policy:
    from actionimages.policy.expert import ExpertPolicy

    if checkpoint is not None:
        raise ActionImagesError("the expert policy takes no checkpoint")
    return ExpertPolicy()


def _action_images(checkpoint: str | None, options: dict[str, Any]) -> Policy:
    from actionimages.policy.action_image_policy import ActionImagePolicy

    return ActionImagePolicy.from_checkpoint(checkpoint, **options)


def _oracle(through_vae: bool) -> Callable[[str | None, dict[str, Any]], Policy]:
    def build(checkpoint: str | None, options: dict[str, Any]) -> Policy:
        from actionimages.policy.oracle import OracleActionImagePolicy

        return OracleActionImagePolicy.from_checkpoint(checkpoint, through_vae=through_vae, **options)

    return build


def _baseline(checkpoint: str | None, options: dict[str, Any]) -> Policy:
    from actionimages.eval.baselines import load_baseline_policy

    return load_baseline_policy(checkpoint, **options)


def _server(checkpoint: str | None, options: dict[str, Any]) -> Policy:
    from actionimages.policy.remote import RemotePolicy

    if "url" not in options:
        raise ActionImagesError("the server policy needs url=ws://HOST:PORT (eval --server)")
    return RemotePolicy(**options)


def _bc_net(arch: dict[str, Any]) -> Any:
    from actionimages.eval.baselines.nets import BCNet

    return BCNet(**arch)


def _lowdim_net(arch: dict[str, Any]) -> Any:
    from actionimages.eval.baselines.nets import LowDimNet

    return LowDimNet(**arch)


register_policy(PolicyKind("expert", _expert, needs_checkpoint=False, help="the sim's scripted expert"))
register_policy(PolicyKind("action_images", _action_images, help="a world-action model checkpoint"))
register_policy(
    PolicyKind("bc", _baseline, baseline_net=_bc_net, help="image behaviour cloning (CNN + chunk head)")
)
register_policy(
    PolicyKind("lowdim", _baseline, baseline_net=_lowdim_net, help="low-dim head on the Wan backbone")
)
register_policy(
    PolicyKind(
        "server",
        _server,
        needs_checkpoint=False,
        in_cli=False,
        help="plans from actionimages serve (--server)",
    )
)
register_policy(
    PolicyKind("oracle_codec", _oracle(False), in_cli=False, help="expert future drawn and decoded")
)
register_policy(
    PolicyKind("oracle_autoencoder", _oracle(True), in_cli=False, help="as oracle_codec, through the VAE")
)
