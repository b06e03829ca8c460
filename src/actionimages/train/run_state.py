"""A run's resumable state in one small folder, to commit to the repository (``OUT/state/``).

A training run on this project's CPUs outlives the machine that started it only if its state
travels with the code. Every time the trainer saves a checkpoint it also replaces ``OUT/state/``
(atomically, one state per run) with everything ``train --resume OUT`` needs on a fresh clone:

    OUT/state/state.json          step, CPU-hours, train / clip / model config, data, loss curve,
                                  optimizer hyper-parameters, the precision tier and what it dropped
    OUT/state/tensors.safetensors raw trainable weights, EMA, Adam moments, frozen weights, torch RNG
    OUT/state/checksums.json      size + SHA-256 of both (checked before anything is loaded)

The folder must fit a byte budget (``TrainConfig.state_mib``, 64 MiB by default: what one commit
may add). The first precision tier that fits is used:

==========  ====  ====================  ===============  ===============  ======
tier        raw   EMA                   Adam m           Adam v           frozen
==========  ====  ====================  ===============  ===============  ======
``exact``   fp32  fp32                  fp32             fp32             fp32
``compact`` fp32  fp16 (EMA − raw)      bf16             bf16             fp32
``lean``    fp32  fp16 (EMA − raw)      dropped (zeros)  bf16             fp16
==========  ====  ====================  ===============  ===============  ======

``exact`` resumes bit for bit (the tests prove the losses equal an uninterrupted run's). The
others are lossy and say so in ``state.json``: the raw weights stay exact, the EMA's difference to
them keeps fp16's 11 bits, and in ``lean`` Adam's first moment re-warms from zero (β₁ = 0.9: ~20
steps of smaller updates, not a jump). The measured effect on a ``tiny`` run's loss curve is in
docs/results/policy.md §12.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from actionimages.atomic import atomic_dir
from actionimages.errors import ActionImagesError
from actionimages.train.checkpoint import reading, verify_checkpoint, write_checksums

STATE_DIR = "state"
TENSORS = "tensors.safetensors"
MIB = 1 << 20


@dataclass(frozen=True)
class Tier:
    """Storage dtypes of one precision tier (None: not stored)."""

    name: str
    ema_delta: torch.dtype | None  # None: the EMA itself in fp32
    exp_avg: torch.dtype | None
    exp_avg_sq: torch.dtype
    frozen: torch.dtype


TIERS = (
    Tier("exact", None, torch.float32, torch.float32, torch.float32),
    Tier("compact", torch.float16, torch.bfloat16, torch.bfloat16, torch.float32),
    Tier("lean", torch.float16, None, torch.bfloat16, torch.float16),
)


def _nbytes(dtype: torch.dtype | None) -> int:
    return 0 if dtype is None else torch.empty((), dtype=dtype).element_size()


def tier_bytes(tier: Tier, trainable: int, frozen: int) -> int:
    """Bytes of ``tier``'s tensors for ``trainable`` and ``frozen`` parameter counts."""
    per = 4 + _nbytes(tier.ema_delta or torch.float32) + _nbytes(tier.exp_avg) + _nbytes(tier.exp_avg_sq)
    return per * trainable + _nbytes(tier.frozen) * frozen


def choose_tier(trainable: int, frozen: int, budget_bytes: int) -> Tier:
    """The most precise tier whose tensors fit ``budget_bytes`` (1 MiB is left for metadata)."""
    for tier in TIERS:
        if tier_bytes(tier, trainable, frozen) + MIB <= budget_bytes:
            return tier
    need = tier_bytes(TIERS[-1], trainable, frozen) / MIB
    raise ActionImagesError(
        f"the run's state needs {need:.1f} MiB even in the '{TIERS[-1].name}' tier, over the "
        f"{budget_bytes / MIB:.0f} MiB budget (--state-mib); raise it or pass --state-mib 0 to write none"
    )


def write_state(
    out: Path,
    meta: dict[str, Any],
    raw: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    frozen: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    names: list[str],
    rng: torch.Tensor,
    budget_bytes: int,
) -> Path:
    """Replace ``out/state`` with this state; returns the folder.

    Args:
        meta: JSON-able run record (step, cpu_hours, configs, ...); the tier is added.
        raw, ema: trainable weights and their EMA, by parameter name.
        frozen: the model's other tensors (the autoencoder), by state-dict key.
        optimizer: ``optimizer.state_dict()``; ``names[i]`` is the parameter of its index ``i``.
        rng: ``torch.get_rng_state()``.
    """
    n_raw, n_frozen = sum(t.numel() for t in raw.values()), sum(t.numel() for t in frozen.values())
    tier = choose_tier(n_raw, n_frozen, budget_bytes)
    tensors: dict[str, torch.Tensor] = {"rng": rng.clone()}
    for n, t in raw.items():
        tensors[f"raw/{n}"] = t.float().contiguous()
        e = ema[n].float()
        tensors[f"ema/{n}"] = e.contiguous() if tier.ema_delta is None else (e - t.float()).to(tier.ema_delta)
    for n, t in frozen.items():
        tensors[f"frozen/{n}"] = t.to(tier.frozen).contiguous() if t.is_floating_point() else t.contiguous()
    for i, st in optimizer.get("state", {}).items():
        n = names[int(i)]
        tensors[f"step/{n}"] = torch.as_tensor(st["step"]).float().reshape(1)
        tensors[f"exp_avg_sq/{n}"] = st["exp_avg_sq"].to(tier.exp_avg_sq).contiguous()
        if tier.exp_avg is not None:
            tensors[f"exp_avg/{n}"] = st["exp_avg"].to(tier.exp_avg).contiguous()
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": [names[i] for i in g["params"]]}
              for g in optimizer.get("param_groups", [])]  # fmt: skip
    record = dict(meta) | {
        "tier": tier.name,
        "lossy": tier.name != "exact",
        "optimizer_groups": groups,
        "tensor_bytes": sum(t.numel() * t.element_size() for t in tensors.values()),
    }
    dst = Path(out) / STATE_DIR
    with atomic_dir(dst) as tmp:
        save_file(tensors, str(tmp / TENSORS))
        (tmp / "state.json").write_text(json.dumps(record, indent=1))
        write_checksums(tmp)
    return dst


def read_state_record(out: Path) -> dict[str, Any] | None:
    """``out/state/state.json`` (unverified: for the run's settings), or None without one."""
    path = Path(out) / STATE_DIR / "state.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ActionImagesError(f"{path} cannot be read ({exc})") from exc


def read_state(out: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """Verify and read ``out/state``: (record, tensors), or None when the run has no state folder.

    :class:`~actionimages.train.checkpoint.CheckpointDamaged` names a missing, truncated or changed file.
    """
    folder = Path(out) / STATE_DIR
    if not folder.is_dir():
        return None
    verify_checkpoint(folder)
    with reading(folder, "state.json") as f:
        record = json.loads(f.read_text())
        int(record["step"]), str(record["tier"])
    with reading(folder, TENSORS) as f:
        tensors = load_file(str(f))
    return record, tensors


def unpack_state(
    record: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    names: list[str],
    model_keys: list[str],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any], torch.Tensor]:
    """A read state as the trainer's checkpoint parts: (EMA model state dict, raw, optimizer
    state dict in ``names``' index order, RNG state).

    ``model_keys``: the model's state-dict keys (trainable ones get the EMA, the rest the frozen
    tensors, as a checkpoint's ``model/`` holds them). A missing tensor is an
    :class:`ActionImagesError` naming it.
    """

    def get(key: str) -> torch.Tensor:
        if key not in tensors:
            raise ActionImagesError(f"the run state lacks {key!r}: it was written for another model")
        return tensors[key]

    raw = {n: get(f"raw/{n}").float() for n in names}
    weights = {}
    trainable = set(names)
    for k in model_keys:
        if k in trainable:
            e = get(f"ema/{k}").float()
            weights[k] = e if record["tier"] == "exact" else raw[k] + e
        else:
            t = get(f"frozen/{k}")
            weights[k] = t.float() if t.is_floating_point() else t
    index = {n: i for i, n in enumerate(names)}
    state = {}
    for n in names:
        if f"step/{n}" not in tensors:
            continue  # never stepped (no gradient yet)
        sq = get(f"exp_avg_sq/{n}").float()
        m = tensors.get(f"exp_avg/{n}")
        state[index[n]] = {
            "step": get(f"step/{n}").reshape(()).float(),
            "exp_avg": torch.zeros_like(sq) if m is None else m.float(),
            "exp_avg_sq": sq,
        }
    groups = []
    for g in record.get("optimizer_groups", []):
        missing = [n for n in g["params"] if n not in index]
        if missing:
            raise ActionImagesError(
                f"the run state's optimizer names parameters the model lacks: {missing[:3]}"
            )
        groups.append(dict(g) | {"params": [index[n] for n in g["params"]]})
    return weights, raw, {"state": state, "param_groups": groups}, get("rng")
