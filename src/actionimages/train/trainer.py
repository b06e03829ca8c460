"""Masked rectified-flow training of a :class:`WorldActionModel` on accelerate.

One CPU process, or several over gloo; DDP / FSDP / DeepSpeed on GPUs through an accelerate config
(``configs/accelerate/*.yaml``). AdamW with linear warm-up, gradient-norm clipping, EMA weights,
bf16 autocast where the hardware has it, gradient checkpointing for large configs, TensorBoard
logs, a tqdm bar, and atomic resumable checkpoints (``actionimages.train.checkpoint``).

Run layout (``out``)::

    out/checkpoints/step-XXXXXXXX/{model/ (EMA weights), raw.safetensors, optimizer.pt, state.json,
                                   checksums.json (size + SHA-256 of the others, checked on resume)}
    out/checkpoints/latest
    out/model/            the EMA weights as a loadable model dir (written at the end)
    out/tb/               TensorBoard events
    out/train_config.json
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from actionimages.atomic import atomic_dir, write_json_atomic
from actionimages.errors import ActionImagesError
from actionimages.model.flow import Prepared, training_loss
from actionimages.model.io import state_dict_mismatch
from actionimages.model.network import WorldActionModel
from actionimages.train.checkpoint import (
    CheckpointDamaged,
    load_newest_intact,
    reading,
    save_checkpoint,
    verify_checkpoint,
)
from actionimages.train.data import PreparedCache, SampleSource, global_indices, sample_seed
from actionimages.train.run_state import (
    MIB,
    TENSORS,
    choose_tier,
    read_state,
    read_state_record,
    unpack_state,
    write_state,
)

if TYPE_CHECKING:
    from accelerate import Accelerator


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (``batch_size`` is per process)."""

    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    warmup: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 10
    save_every: int = 500
    keep: int = 3
    # "auto": bf16 on GPUs that support it and on CPUs with AVX512-BF16 / AMX, else fp32
    mixed_precision: str = "auto"
    cache_latents: bool = True
    progress: bool = True
    # Budget of OUT/state/, the resumable state replaced at every save for committing to the
    # repository (train/run_state.py picks the precision tier that fits); 0: write none.
    state_mib: float = 64.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ActionImagesError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ActionImagesError(f"lr must be positive, got {self.lr}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ActionImagesError(
                f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}"
            )
        if len(self.betas) != 2:
            raise ActionImagesError(f"betas must be two numbers, got {self.betas}")
        if not self.state_mib >= 0:
            raise ActionImagesError(f"state_mib must be >= 0 (0: no run state), got {self.state_mib}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


class _LossModule(nn.Module):
    """The loss as a module forward, so DDP/FSDP wrappers see (and synchronise) the computation."""

    def __init__(self, model: WorldActionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x0, camera, frame_weight, has_actions, instruction, seeds, observation=None):
        prep = Prepared(x0, camera, frame_weight, has_actions, list(instruction), observation)
        return training_loss(self.model, prep, seeds)


CURVE_EVERY = 50  # steps per point of the run's whole loss curve (state.json "curve")


def lr_factor(step: int, warmup: int) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then constant."""
    return min(1.0, (step + 1) / max(1, warmup))


class EMA:
    """Exponential moving average of trainable parameters (fp32), with the usual early-step ramp."""

    def __init__(self, params: Sequence[tuple[str, nn.Parameter]], decay: float) -> None:
        self.decay = decay
        self.names = [n for n, _ in params]
        self.shadow = {n: p.detach().float().clone() for n, p in params}

    @torch.no_grad()
    def update(self, params: Sequence[tuple[str, nn.Parameter]], step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for n, p in params:
            self.shadow[n].mul_(d).add_(p.detach().float(), alpha=1 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t.contiguous() for n, t in self.shadow.items()}

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) - set(sd)
        if missing:
            raise ActionImagesError(f"EMA state lacks {len(missing)} parameters, e.g. {sorted(missing)[:3]}")
        self.shadow = {n: sd[n].float().clone() for n in self.names}

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        named = dict(model.named_parameters())
        for n in self.names:
            named[n].data.copy_(self.shadow[n].to(named[n].dtype))


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 matmuls natively (AVX512-BF16 or AMX-BF16, Linux flags).

    Without them bf16 autocast on a CPU is emulated and slower than fp32 (docs/RESULTS.md, issue 22).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_mixed_precision(choice: str) -> str:
    """``"auto"`` -> bf16 on a GPU that supports it or a CPU with native bf16, else ``"no"`` (fp32)."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def make_accelerator(mixed_precision: str = "auto") -> Accelerator:
    """The ``Accelerator`` a :class:`Trainer` uses by default: CPU processes (gloo) without CUDA.

    accelerate 1.15 turns an FSDP config (``ACCELERATE_USE_FSDP``, set by ``accelerate launch
    --config_file configs/accelerate/fsdp.yaml``) on only for accelerator devices: on CPU it
    silently trains plain data parallel. Here an FSDP request on CPU processes is honoured (torch's
    FSDP2 shards over gloo), so the sharded path is the one that runs. A DeepSpeed request on CPU
    is refused: accelerate would ignore it just as silently.
    """
    import os

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    precision = resolve_mixed_precision(mixed_precision)
    shared = AcceleratorState._shared_state
    if (
        shared
        and str(shared.get("_mixed_precision", precision)) != precision
        and PartialState().num_processes == 1
    ):
        # accelerate keeps one precision per process and refuses another; in a single process
        # nothing else holds that state, so a second trainer (a test, a notebook) may choose its own.
        AcceleratorState._reset_state()
    acc = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())

    def wants(engine: str) -> bool:  # what `accelerate launch` asked for, from its config file
        return os.environ.get(f"ACCELERATE_USE_{engine}", "false").lower() == "true"

    if acc.distributed_type == DistributedType.MULTI_CPU and wants("DEEPSPEED"):
        raise ActionImagesError(
            "a DeepSpeed config on CPU processes: accelerate runs DeepSpeed only on GPUs "
            "(use configs/accelerate/cpu_2proc.yaml or fsdp.yaml on CPU)"
        )
    if acc.distributed_type == DistributedType.MULTI_CPU and wants("FSDP"):
        # Both shared states: a later AcceleratorState() copies PartialState's type over its own.
        AcceleratorState._shared_state["distributed_type"] = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        AcceleratorState._shared_state["fsdp_plugin"] = FullyShardedDataParallelPlugin()
        if acc.distributed_type != DistributedType.FSDP:  # a future accelerate keeps state elsewhere
            raise ActionImagesError("an FSDP config on CPU processes, which this accelerate cannot shard")
    return acc


def _save_pretrained(model: WorldActionModel, directory: Path, weights: dict | None = None) -> None:
    """``model.save_pretrained`` into ``directory``, of ``weights`` (a whole state dict) when given:
    under FSDP the model's own tensors are shards. diffusers writes what ``state_dict()`` returns
    (sharded files and index alike), so the folder is the same as one process writes."""
    if weights is not None:
        model.state_dict = lambda *args, **kwargs: weights  # this instance only, undone below
    try:
        model.save_pretrained(str(directory), safe_serialization=True)
    finally:
        if weights is not None:
            del model.state_dict


def _rekey_optimizer_state(state: dict, key: dict | list) -> dict:
    """An optimizer state dict with each parameter ``k`` renamed ``key[k]``: between
    ``optimizer.state_dict()``'s indices (the checkpoint's) and torch.distributed's names."""
    return {
        "state": {key[k]: v for k, v in state.get("state", {}).items()},
        "param_groups": [
            {**g, "params": [key[k] for k in g["params"]]} for g in state.get("param_groups", [])
        ],
    }


class Trainer:
    """Trains ``model`` on ``source`` into the run directory ``out`` (see module docstring)."""

    def __init__(
        self,
        model: WorldActionModel,
        source: SampleSource,
        out: str | Path,
        config: TrainConfig | None = None,
        accelerator=None,
    ) -> None:
        self.cfg = config or TrainConfig()
        if len(source) < 1:
            raise ActionImagesError("the training data is empty")
        self.out = Path(out)
        self.acc = accelerator or make_accelerator(self.cfg.mixed_precision)
        self.model = model.to(self.acc.device)
        if model.spec.gradient_checkpointing:
            self.model.gradient_checkpointing = True
        self.source = source
        self.cache = PreparedCache(self.model, source, enabled=self.cfg.cache_latents)
        self.named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        frozen = {id(p) for p in self.model.latent_space.parameters()}
        self.named = [(n, p) for n, p in self.named if id(p) not in frozen]
        if not self.named:
            raise ActionImagesError("the model has no trainable parameters")
        decay = [p for n, p in self.named if p.ndim >= 2 and "embed" not in n]
        no_decay = [p for n, p in self.named if not (p.ndim >= 2 and "embed" not in n)]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.cfg.lr,
            betas=self.cfg.betas,
        )
        if self.fsdp:
            # The frozen VAE encodes samples outside the sharded forward (PreparedCache), so it
            # must keep whole, ordinary parameters: FSDP leaves it unsharded.
            self.acc.state.fsdp_plugin.ignored_modules = [self.model.latent_space]
        self.loss_module, self.optimizer = self.acc.prepare(_LossModule(self.model), opt)
        if self.fsdp:
            # FSDP2 replaced the parameters with sharded DTensors (same names); the EMA, clipping
            # and the optimizer must all see the new ones.
            names = {n for n, _ in self.named}
            self.named = [(n, p) for n, p in self.model.named_parameters() if n in names]
        self.ema = EMA(self.named, self.cfg.ema_decay)
        if self.cfg.state_mib > 0:  # a run whose state cannot fit is refused now, not at its first save
            trainable = sum(p.numel() for _, p in self.named)
            frozen = sum(t.numel() for t in self.model.state_dict().values()) - trainable
            choose_tier(trainable, frozen, int(self.cfg.state_mib * MIB))
        self.step = 0
        self.resumed_from: Path | None = None  # the checkpoint ``resume`` restored
        self.history: list[dict[str, float]] = []
        # The whole run's loss curve, one point per CURVE_EVERY steps: [step, mean loss, CPU-hours].
        self.curve: list[list[float]] = []
        # What a fresh clone needs besides the tensors to resume (set by the CLI: data, clip settings).
        self.run_info: dict[str, Any] = {}
        # CPU time of this process (all its threads) plus what earlier runs of the same training
        # spent: the cost axis of success-per-CPU-hour comparisons.
        self._cpu_before, self._cpu_t0 = 0.0, time.process_time()

    # ------------------------------------------------------------- state
    @property
    def fsdp(self) -> bool:
        """Whether accelerate shards the model with FSDP (an fsdp config; on CPU via make_accelerator)."""
        from accelerate.utils import DistributedType

        return self.acc.distributed_type == DistributedType.FSDP

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.acc.num_processes

    @property
    def precision(self) -> str:
        """The mixed precision in use ("no" = fp32, "bf16", "fp16"): recorded with every checkpoint."""
        return str(self.acc.mixed_precision)

    def _record(self, model_config: dict[str, Any]) -> dict[str, Any]:
        """What a checkpoint's and the run state's state.json say about the run."""
        return {
            "step": self.step,
            "samples_seen": self.step * self.global_batch,
            "global_batch": self.global_batch,
            "num_samples": len(self.source),
            "train_config": self.cfg.to_dict(),
            "model_config": model_config,
            "mixed_precision": self.precision,
            "precision_segments": self._precision_segments(),
            "history": self.history[-1000:],
            "curve": self.curve,
            "cpu_hours": round(self.cpu_hours, 4),
            **self.run_info,
        }

    def _write(self, tmp: Path, gathered: tuple[dict, dict, dict] | None = None) -> None:
        # model/ holds the EMA weights (what one evaluates or deploys; loadable with load_model);
        # raw.safetensors the raw trainable weights the optimizer continues from on resume.
        # ``gathered``: under FSDP, _gather_checkpoint's whole tensors (the model's are shards).
        unwrapped = self.acc.unwrap_model(self.loss_module).model
        if gathered is None:
            raw = {n: p.detach().contiguous().cpu() for n, p in self.named}
            weights, optimizer = None, self.optimizer.state_dict()
        else:
            raw, weights, optimizer = gathered
        save_file(raw, str(tmp / "raw.safetensors"))
        with self._ema_weights(unwrapped) if weights is None else contextlib.nullcontext():
            _save_pretrained(unwrapped, tmp / "model", weights)
        torch.save({"optimizer": optimizer, "torch_rng": torch.get_rng_state()}, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(self._record(unwrapped.spec.to_dict()), indent=1))

    def _write_state(self, gathered: tuple[dict, dict, dict] | None = None) -> Path:
        """Replace OUT/state/ (run_state.py) with the current step's resumable state."""
        unwrapped = self.acc.unwrap_model(self.loss_module).model
        names = self._optimizer_names()
        if gathered is None:
            raw = {n: p.detach().cpu() for n, p in self.named}
            ema = self.ema.state_dict()
            everything, optimizer = unwrapped.state_dict(), self.optimizer.state_dict()
        else:
            raw, everything, optimizer = gathered
            ema = {n: everything[n] for n in raw}
        frozen = {k: v.detach().cpu() for k, v in everything.items() if k not in raw}
        return write_state(
            self.out,
            self._record(unwrapped.spec.to_dict()),
            raw,
            ema,
            frozen,
            optimizer,
            names,
            torch.get_rng_state(),
            int(self.cfg.state_mib * MIB),
        )

    @contextlib.contextmanager
    def _ema_weights(self, model: nn.Module):
        """Temporarily swap the EMA weights into ``model``."""
        backup = {n: p.detach().clone() for n, p in self.named}
        self.ema.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in self.named:
                    p.copy_(backup[n])

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (main process only); returns its directory.

        Under FSDP every rank first takes part in gathering the whole tensors (the same
        checkpoint format as one process: either resumes the other).
        """
        self.acc.wait_for_everyone()
        gathered = self._gather_checkpoint() if self.fsdp else None
        path = None
        if self.acc.is_main_process:
            write = lambda tmp: self._write(tmp, gathered)  # noqa: E731
            path = save_checkpoint(self.out / "checkpoints", self.step, write, keep=self.cfg.keep)
            if self.cfg.state_mib > 0:
                self._write_state(gathered)
        self.acc.wait_for_everyone()
        return path

    # Whole (unsharded) tensors of FSDP's DTensors, on rank 0's CPU only ({} on the other ranks).
    _FULL_ON_MAIN = {"full_state_dict": True, "cpu_offload": True}

    def _gather_weights(self, use_ema: bool) -> dict[str, torch.Tensor]:
        """Under FSDP, the whole model state dict (EMA or raw trainable weights) on rank 0; every
        rank must call it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        with self._ema_weights(self.model) if use_ema else contextlib.nullcontext():
            return get_model_state_dict(self.model, options=StateDictOptions(**self._FULL_ON_MAIN))

    def _gather_checkpoint(self) -> tuple[dict, dict, dict]:
        """Under FSDP, (raw trainable weights, EMA model weights, optimizer state) whole on rank 0,
        the optimizer state in ``optimizer.state_dict()``'s layout; every rank must call it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        raw = self._gather_weights(use_ema=False)
        raw = {n: raw[n].contiguous() for n, _ in self.named} if raw else {}
        weights = self._gather_weights(use_ema=True)
        opts = StateDictOptions(**self._FULL_ON_MAIN)
        by_name = get_optimizer_state_dict(self.model, self.optimizer, options=opts)
        index = {n: i for i, n in enumerate(self._optimizer_names())}
        return raw, weights, _rekey_optimizer_state(by_name, index)

    def _optimizer_names(self) -> list[str]:
        """The trained parameters' names in the optimizer's order (its state dict's indices)."""
        name_of = {id(p): n for n, p in self.named}
        return [name_of[id(p)] for group in self.optimizer.param_groups for p in group["params"]]

    def _load_sharded(self, weights: dict, raw: dict, optimizer: dict) -> None:
        """Under FSDP, load rank 0's whole checkpoint tensors into every rank's shards (the other
        ranks pass empty dicts): model (EMA weights, then the raw ones), EMA, optimizer."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        set_model_state_dict(self.model, weights, options=opts)  # model/ holds the EMA weights
        self.ema.load_state_dict({n: p.detach() for n, p in self.named})
        set_model_state_dict(self.model, raw, options=dataclasses.replace(opts, strict=False))
        by_name = _rekey_optimizer_state(optimizer, self._optimizer_names()) if optimizer else {}
        set_optimizer_state_dict(self.model, self.optimizer, by_name, options=opts)

    def _find_on_main(self, path: str | Path | None) -> tuple[Path, tuple] | None:
        """Under FSDP rank 0 alone reads the checkpoint (its tensors reach the other ranks in
        _load_sharded); every rank learns the outcome: what was found, or the error."""
        from torch.distributed import broadcast_object_list

        found, error = None, None
        if self.acc.is_main_process:
            try:
                found = self._find_checkpoint(path)
            except Exception as exc:  # the other ranks must hear of it, or they wait forever
                error = exc
        meta = None if found is None else (found[0], found[1][0], found[1][3]["torch_rng"])
        box = [None if error is None else f"{type(error).__name__}: {error}", meta]
        broadcast_object_list(box, src=0)
        if error is not None:
            raise error
        if box[0] is not None:
            raise ActionImagesError(f"rank 0 could not resume: {box[0]}")
        if self.acc.is_main_process or box[1] is None:
            return found
        ck, state, rng = box[1]
        return ck, (state, {}, {}, {"optimizer": {}, "torch_rng": rng})

    def _find_checkpoint(self, path: str | Path | None) -> tuple[Path, tuple] | None:
        """A named checkpoint (or run state folder), else the newer of the run's newest intact
        checkpoint and its committed state (OUT/state/; the checkpoint on a tie: it is exact)."""
        if path:
            ck = Path(path)
            if (ck / TENSORS).is_file():  # a run state folder
                return ck, self._read_run_state(ck.parent)
            verify_checkpoint(ck)
            return ck, self._read_checkpoint(ck)
        record = read_state_record(self.out)
        found = load_newest_intact(self.out / "checkpoints", self._read_checkpoint)
        if record is not None and (found is None or int(record["step"]) > int(found[1][0]["step"])):
            return self.out / "state", self._read_run_state(self.out)
        return found

    def _read_run_state(self, out: Path) -> tuple[dict, dict, dict, dict]:
        """OUT/state/ as ``_read_checkpoint``'s parts, checked against this trainer."""
        record, tensors = read_state(out)
        folder = out / "state"
        if int(record["global_batch"]) != self.global_batch:
            raise ActionImagesError(
                f"run state {folder} used global batch {record['global_batch']}, now {self.global_batch}: "
                "the data order would differ"
            )
        expected = self.acc.unwrap_model(self.loss_module).model.state_dict()
        weights, raw, optimizer, rng = unpack_state(record, tensors, self._optimizer_names(), list(expected))
        missing, unexpected, reshaped = state_dict_mismatch(expected, weights)
        if missing or unexpected or reshaped:
            raise ActionImagesError(
                f"run state {folder} does not fit the model: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}, other shape {reshaped[:3]}"
            )
        for g in optimizer["param_groups"]:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        if record.get("lossy"):
            warnings.warn(
                f"resuming from {folder} in its '{record['tier']}' precision tier (raw weights exact; "
                "EMA and Adam moments rounded: train/run_state.py)",
                RuntimeWarning,
                stacklevel=3,
            )
        return record, weights, raw, {"optimizer": optimizer, "torch_rng": rng}

    def resume(self, path: str | Path | None = None) -> bool:
        """Restore model, EMA, optimizer, step and RNG from ``path`` or the run's newest intact checkpoint.

        Without ``path`` a damaged checkpoint (a file missing, truncated, changed since it was written
        or unreadable) is skipped with a ``RuntimeWarning`` naming it and why, and the next older one
        is used; :class:`ActionImagesError` if none is intact, False if there is none at all. A
        checkpoint named by ``path`` is never replaced by another: its damage is an error. One that is
        intact but does not fit this trainer (another global batch, another model) is an error too.
        Nothing is changed until the whole checkpoint has been read. Under FSDP rank 0 reads it and
        every rank loads its shards from there.
        """
        found = self._find_on_main(path) if self.fsdp else self._find_checkpoint(path)
        if found is None:
            return False
        ck, loaded = found
        state, weights, raw, opt_state = loaded
        if self.fsdp:
            self._load_sharded(weights, raw, opt_state["optimizer"])
        else:
            unwrapped = self.acc.unwrap_model(self.loss_module).model
            unwrapped.load_state_dict(weights)
            self.ema.load_state_dict({n: weights[n] for n in self.ema.names})  # model/: EMA weights
            with torch.no_grad():
                for n, p in self.named:
                    p.copy_(raw[n])
            try:
                self.optimizer.load_state_dict(opt_state["optimizer"])
            except (ValueError, KeyError) as exc:
                raise ActionImagesError(f"checkpoint {ck}: the optimizer state does not fit ({exc})") from exc
        torch.set_rng_state(opt_state["torch_rng"])
        self.step = self.resumed_from_step = int(state["step"])
        self.history = list(state.get("history", []))
        self.curve = [list(p) for p in state.get("curve", [])]
        self._cpu_before, self._cpu_t0 = float(state.get("cpu_hours", 0.0)) * 3600.0, time.process_time()
        self.resumed_from = ck
        earlier = state.get("precision_segments") or [[0, state.get("mixed_precision", "no")]]
        self.precision_before = [list(seg) for seg in earlier]
        if earlier[-1][1] != self.precision:  # "auto" resolves per machine: say so where it changes
            warnings.warn(
                f"{ck} trained in mixed precision {earlier[-1][1]!r} up to step {self.step}; it continues in "
                f"{self.precision!r} on this machine (recorded in state.json precision_segments; pass "
                f"--mixed-precision {earlier[-1][1]} to keep it)",
                RuntimeWarning,
                stacklevel=2,
            )
        return True

    def _precision_segments(self) -> list[list]:
        """[[first step, precision], ...]: which precision trained which steps, across resumes."""
        segments = list(getattr(self, "precision_before", [])) or [[0, self.precision]]
        if segments[-1][1] != self.precision:
            segments.append([int(self.resumed_from_step), self.precision])
        return segments

    def _read_checkpoint(self, ck: Path) -> tuple[dict, dict, dict, dict]:
        """Read (and check) everything ``resume`` needs from ``ck``, changing nothing.

        An unreadable file raises :class:`CheckpointDamaged`; a checkpoint that does not fit this
        trainer :class:`ActionImagesError`.
        """
        with reading(ck, "state.json") as f:
            state = json.loads(f.read_text())
            step, global_batch = int(state["step"]), int(state["global_batch"])
        if global_batch != self.global_batch:
            raise ActionImagesError(
                f"checkpoint {ck} used global batch {global_batch}, now {self.global_batch}: "
                "the data order would differ"
            )
        weights: dict[str, torch.Tensor] = {}
        files = sorted((ck / "model").glob("*.safetensors"))
        if not files:
            raise CheckpointDamaged(f"{ck / 'model'} holds no *.safetensors weights")
        for file in files:
            with reading(ck, file.relative_to(ck).as_posix()) as f:
                weights.update(load_file(str(f)))
        expected = self.acc.unwrap_model(self.loss_module).model.state_dict()
        missing, unexpected, reshaped = state_dict_mismatch(expected, weights)
        if unexpected or missing or reshaped:
            raise ActionImagesError(
                f"checkpoint {ck} does not fit the model: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}, other shape {reshaped[:3]}"
            )
        with reading(ck, "raw.safetensors") as f:
            raw = load_file(str(f))
        lacking = [n for n, p in self.named if n not in raw or raw[n].shape != p.shape]
        if lacking:
            raise ActionImagesError(f"checkpoint {ck}: raw.safetensors lacks {lacking[:3]} (or their shape)")
        with reading(ck, "optimizer.pt") as f:
            opt_state = torch.load(f, weights_only=False)
        if not isinstance(opt_state, dict) or not {"optimizer", "torch_rng"} <= opt_state.keys():
            raise CheckpointDamaged(f"{ck / 'optimizer.pt'} lacks the optimizer state or the RNG state")
        # Checked here, before anything changes (under FSDP before the ranks load it together).
        want = [len(g["params"]) for g in self.optimizer.param_groups]
        got = [len(g.get("params", ())) for g in opt_state["optimizer"].get("param_groups", ())]
        if got != want:
            raise ActionImagesError(
                f"checkpoint {ck}: the optimizer state does not fit (groups of {got} parameters, "
                f"this trainer's of {want})"
            )
        state["step"] = step
        return state, weights, raw, opt_state

    @property
    def cpu_hours(self) -> float:
        """CPU-hours spent on this training so far, across resumes (this process: all threads)."""
        return (self._cpu_before + time.process_time() - self._cpu_t0) / 3600.0

    def export(self, path: str | Path | None = None, use_ema: bool = True) -> Path:
        """Write a loadable model dir (``load_model``) with the EMA (or raw) weights, atomically.

        Under FSDP every rank takes part in gathering the whole weights; rank 0 writes.
        """
        dst = Path(path) if path else self.out / "model"
        self.acc.wait_for_everyone()
        weights = self._gather_weights(use_ema) if self.fsdp else None
        if self.acc.is_main_process:
            unwrapped = self.acc.unwrap_model(self.loss_module).model
            swap = self._ema_weights(unwrapped) if use_ema and weights is None else contextlib.nullcontext()
            with atomic_dir(dst) as tmp, swap:
                _save_pretrained(unwrapped, tmp, weights)
        self.acc.wait_for_everyone()
        return dst

    # -------------------------------------------------------------- train
    def train_step(self) -> float:
        """One optimisation step; returns the loss averaged over all processes."""
        cfg = self.cfg
        gb = self.global_batch
        idx = global_indices(self.step, gb, len(self.source), cfg.seed)
        lo = self.acc.process_index * cfg.batch_size
        local = idx[lo : lo + cfg.batch_size]
        seeds = [sample_seed(cfg.seed, self.step, lo + k) for k in range(len(local))]
        prep = self.cache.get(local).to(self.acc.device)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(self.step, cfg.warmup)
        self.loss_module.train()
        with self.acc.autocast():
            loss = self.loss_module(
                prep.x0,
                prep.camera,
                prep.frame_weight,
                prep.has_actions,
                prep.instruction,
                seeds,
                prep.observation,
            )
        if not torch.isfinite(loss):
            raise ActionImagesError(f"non-finite loss {loss.item()} at step {self.step}")
        self.acc.backward(loss)
        grad_norm = self.acc.clip_grad_norm_([p for _, p in self.named], cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.named, self.step)
        mean_loss = float(self.acc.reduce(loss.detach(), reduction="mean"))
        self.history.append(
            {
                "step": self.step,
                "loss": mean_loss,
                "grad_norm": float(grad_norm),
                "lr": self.optimizer.param_groups[0]["lr"],
            }
        )
        self.step += 1
        return mean_loss

    def fit(self, steps: int | None = None) -> list[float]:
        """Train until ``steps`` (default: the config's) total steps; returns this call's losses."""
        total = self.cfg.steps if steps is None else steps
        losses: list[float] = []
        writer = None
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.out / "train_config.json", self.cfg.to_dict(), indent=1)
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step)
        show = self.cfg.progress and self.acc.is_main_process
        bar = tqdm(total=total, initial=self.step, desc="train", disable=not show, dynamic_ncols=True)
        t0, n0 = time.perf_counter(), self.step
        try:
            while self.step < total:
                loss = self.train_step()
                losses.append(loss)
                rate = (self.step - n0) * self.global_batch / max(1e-9, time.perf_counter() - t0)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{rate:.1f}")
                if self.step % CURVE_EVERY == 0:
                    window = [h["loss"] for h in self.history[-CURVE_EVERY:]]
                    mean = round(sum(window) / len(window), 6)
                    self.curve.append([self.step, mean, round(self.cpu_hours, 4)])
                if writer is not None and (self.step % self.cfg.log_every == 0 or self.step == total):
                    h = self.history[-1]
                    writer.add_scalar("train/loss", loss, self.step)
                    writer.add_scalar("train/grad_norm", h["grad_norm"], self.step)
                    writer.add_scalar("train/lr", h["lr"], self.step)
                    writer.add_scalar("train/samples_per_s", rate, self.step)
                if self.cfg.save_every > 0 and self.step % self.cfg.save_every == 0 and self.step < total:
                    self.save()
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return losses
