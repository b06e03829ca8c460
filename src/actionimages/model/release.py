"""Import the authors' released checkpoint into a :class:`WorldActionModel` folder.

The release (https://github.com/UMass-Embodied-AGI/ActionImages, weights on Hugging Face as
``anyeZHY/ActionImages``) stores the fine-tuned DiT alone: ``torch.save`` of the state dict of
DiffSynth-Studio's ``WanModel`` (the release vendors it as ``training/models/wan_video_dit.py``)
after ``train.py`` has added two modules to every block:

- ``blocks.N.cam_encoder``: ``AdaptiveAvgPool3d((48, 16, 16))``, ``Flatten(2)``, ``Linear(12288, dim)``
  (zero-initialised). Its input is the *VAE latents* of Plücker images (direction and moment / 3,
  each encoded as a 3-channel video: 2 × 48 channels per latent pixel), pooled per latent frame to
  one vector, and added, the same for every token of that frame, to the modulated input of the
  block's self-attention only.
- ``blocks.N.projector``: ``Linear(dim, dim)`` (identity-initialised) on the self-attention
  output, before the gate.

The VAE (``Wan2.2_VAE.pth``), the umT5-XXL text encoder and tokenizer are the base
Wan2.2-TI2V-5B's, frozen in training; they come from a diffusers-format Wan2.2-TI2V-5B folder.

What maps (facts: key names from the release's ``wan_video_dit.py``, and their diffusers names from
diffusers' ``convert_wan_transformer_to_diffusers``):

- every backbone tensor, one to one, onto ``transformer.*`` (diffusers ``WanTransformer3DModel``);
- ``projector`` folds exactly into the self-attention output projection:
  ``P(W_o a + b_o) + b_p = (P W_o) a + (P b_o + b_p)``.

What does not: ``cam_encoder``. Ours (``camera_encoder`` + ``camera_proj``) reads per-token samples
of raw Plücker rays and adds per token to the residual stream before each block; the release's
reads VAE latents of Plücker images, keeps one vector per latent frame and adds it inside the
self-attention branch. No tensor of one is a tensor of the other. The release's ``cam_encoder``
tensors are reported as unmapped; ours get ``camera_proj`` = 0 (so the camera term is exactly zero)
and a seeded ``camera_encoder``. If the release's ``cam_encoder`` is not all zeros (it was trained),
the imported model runs without a conditioning it was trained with: a warning, or an error with
``strict``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from actionimages.atomic import sha256_file
from actionimages.errors import ActionImagesError
from actionimages.model.config import ModelConfig
from actionimages.model.io import WEIGHT_DTYPES, load_pretrained_wan, save_model_folder
from actionimages.model.network import WorldActionModel

RELEASE_REPO = "https://github.com/UMass-Embodied-AGI/ActionImages"
RELEASE_WEIGHTS = "https://huggingface.co/anyeZHY/ActionImages"
CAMERA_ENCODER_SEED = 0  # our camera encoder's init is seeded so one source gives one folder

# DiffSynth WanModel name -> diffusers WanTransformer3DModel name (modules; .weight/.bias follow).
_TOP_MODULES = {
    "patch_embedding": "patch_embedding",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "head.head": "proj_out",
}
_BLOCK_MODULES = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "norm3": "norm2",  # DiffSynth's norm3 (affine, before cross-attention) is diffusers' norm2
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
}
_BLOCK_NORMS = {  # RMSNorm over the whole width: weight only
    "self_attn.norm_q": "attn1.norm_q",
    "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.norm_q": "attn2.norm_q",
    "cross_attn.norm_k": "attn2.norm_k",
}
# Wrappers other tools put around the same keys (a DiffSynth pipeline, Lightning, DDP, ComfyUI).
_PREFIXES = ("pipe.dit.", "dit.", "model.diffusion_model.", "module.", "model.")
_CAMERA_KEY = re.compile(r"^blocks\.(\d+)\.cam_encoder\.")
_PROJECTOR_KEY = re.compile(r"^blocks\.(\d+)\.projector\.(weight|bias)$")


def release_key_map(num_layers: int) -> dict[str, str]:
    """Every backbone tensor of the release's DiT -> our ``WorldActionModel`` key (``transformer.*``).

    The camera modules (``cam_encoder``, ``projector``) are not in it: see :func:`plan_import`.
    """
    out: dict[str, str] = {}
    for src, ours in _TOP_MODULES.items():
        for p in ("weight", "bias"):
            out[f"{src}.{p}"] = f"transformer.{ours}.{p}"
    out["head.modulation"] = "transformer.scale_shift_table"  # (1, 2, dim)
    for n in range(num_layers):
        for src, ours in _BLOCK_MODULES.items():
            for p in ("weight", "bias"):
                out[f"blocks.{n}.{src}.{p}"] = f"transformer.blocks.{n}.{ours}.{p}"
        for src, ours in _BLOCK_NORMS.items():
            out[f"blocks.{n}.{src}.weight"] = f"transformer.blocks.{n}.{ours}.weight"
        out[f"blocks.{n}.modulation"] = f"transformer.blocks.{n}.scale_shift_table"  # (1, 6, dim)
    return out


# ------------------------------------------------------------------------------------ reading
@dataclass
class ReleaseSource:
    """A release state dict as read from disk."""

    tensors: dict[str, torch.Tensor]
    format: str  # "safetensors-shards", "safetensors" or "torch"
    files: list[Path]
    prefix: str = ""  # stripped from every key


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError: a truncated or foreign file
        raise ActionImagesError(f"cannot read {path} as safetensors ({type(exc).__name__}: {exc})") from exc


def _load_torch(path: Path) -> dict[str, torch.Tensor]:
    try:  # weights_only: a checkpoint is data, never code; mmap: a 20 GB file need not be read twice
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError (zip), EOFError
        raise ActionImagesError(
            f"cannot read {path} as a torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    # Lightning / DeepSpeed wrap the state dict in a dict of non-tensors: unwrap
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = [obj[w] for w in ("state_dict", "module", "model") if isinstance(obj.get(w), dict)]
        if not inner:
            break
        obj = inner[0]
    if not isinstance(obj, dict):
        raise ActionImagesError(f"{path} holds a {type(obj).__name__}, not a state dict")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ActionImagesError(f"{path}: entries that are not tensors: {bad[:4]}")
    return obj


def _load_file(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    if path.suffix == ".safetensors":
        return _load_safetensors(path), "safetensors"
    if path.suffix in (".ckpt", ".pth", ".pt", ".bin"):
        return _load_torch(path), "torch"
    raise ActionImagesError(
        f"{path}: unknown weights format (expected .safetensors, .ckpt, .pth, .pt or .bin)"
    )


def _load_shards(index: Path) -> tuple[dict[str, torch.Tensor], list[Path]]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ActionImagesError(f"{index} is not a safetensors index (no weight_map): {exc}") from exc
    shards = sorted({index.parent / name for name in weight_map.values()})
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise ActionImagesError(f"{index.name} names shards that are missing: {missing}")
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        part = _load_safetensors(shard)
        for key, value in part.items():
            if weight_map.get(key) != shard.name:
                raise ActionImagesError(
                    f"{shard.name} holds {key}, which {index.name} puts in {weight_map.get(key)}"
                )
            tensors[key] = value
    absent = sorted(set(weight_map) - set(tensors))
    if absent:
        raise ActionImagesError(f"{index.name} lists tensors no shard holds: {absent[:4]}")
    return tensors, shards


def read_release(src: str | Path) -> ReleaseSource:
    """The release's state dict from ``src``: a file (``.ckpt`` / ``.pth`` / ``.pt`` / ``.bin`` torch
    pickle, read with ``weights_only``, or ``.safetensors``) or a directory holding safetensors shards
    with their ``*.safetensors.index.json``, a single ``.safetensors`` file, or one torch checkpoint."""
    src = Path(src)
    if src.is_file():
        tensors, fmt = _load_file(src)
        files = [src]
    elif src.is_dir():
        indexes = sorted(src.glob("*.safetensors.index.json"))
        singles = sorted(src.glob("*.safetensors"))
        pickles = sorted(p for ext in ("ckpt", "pth", "pt", "bin") for p in src.glob(f"*.{ext}"))
        if len(indexes) > 1:
            raise ActionImagesError(
                f"{src} has several safetensors indexes {[i.name for i in indexes]}; name one shard set"
            )
        if indexes:
            tensors, files = _load_shards(indexes[0])
            fmt = "safetensors-shards"
        elif len(singles) + len(pickles) == 1:
            files = singles + pickles
            tensors, fmt = _load_file(files[0])
        elif singles or pickles:
            names = [p.name for p in singles + pickles]
            raise ActionImagesError(
                f"{src} holds several weight files {names} and no index; pass one file as SRC"
            )
        else:
            raise ActionImagesError(f"{src} holds no weights (*.safetensors, *.ckpt, *.pth, *.pt, *.bin)")
    else:
        raise ActionImagesError(f"{src} does not exist")
    if not tensors:
        raise ActionImagesError(f"{src} holds no tensors")
    prefix = ""
    for candidate in _PREFIXES:
        if all(k.startswith(candidate) for k in tensors):
            prefix = candidate
            tensors = {k[len(candidate) :]: v for k, v in tensors.items()}
            break
    return ReleaseSource(tensors, fmt, files, prefix)


# ----------------------------------------------------------------------------------- planning
@dataclass
class ImportPlan:
    """How each source tensor lands in our model (see :func:`plan_import`)."""

    mapped: dict[str, str] = field(default_factory=dict)  # source key -> our key
    folded: dict[int, tuple[str, str]] = field(default_factory=dict)  # block -> projector weight, bias keys
    unmapped: list[dict] = field(default_factory=list)  # {key, shape, reason}
    camera_trained: bool = False  # the release's cam_encoder holds non-zero tensors


def plan_import(source: Mapping[str, torch.Tensor], model: WorldActionModel) -> ImportPlan:
    """Check the release's tensors against ``model`` and say where each goes.

    Raises an :class:`ActionImagesError` naming every key whose shape does not match ours, every
    backbone tensor the source lacks, and projectors present in some blocks only.
    """
    ours = model.state_dict()
    n_layers = model.spec.transformer.num_layers
    key_map = release_key_map(n_layers)
    plan = ImportPlan()
    mismatched: list[str] = []
    dim = model.spec.transformer.dim
    for key, tensor in source.items():
        shape = tuple(tensor.shape)
        if key in key_map:
            want = tuple(ours[key_map[key]].shape)
            if shape != want:
                mismatched.append(f"{key} {shape} -> {key_map[key]} {want}")
            plan.mapped[key] = key_map[key]
        elif m := _PROJECTOR_KEY.match(key):
            block, kind = int(m.group(1)), m.group(2)
            want = (dim, dim) if kind == "weight" else (dim,)
            if block >= n_layers:
                plan.unmapped.append(
                    {"key": key, "shape": list(shape), "reason": f"block {block} >= {n_layers} layers"}
                )
                continue
            if shape != want:
                mismatched.append(f"{key} {shape} (expected {want}, folded into attn1.to_out.0)")
            plan.folded.setdefault(block, ("", ""))
            w, b = plan.folded[block]
            plan.folded[block] = (key, b) if kind == "weight" else (w, key)
        elif _CAMERA_KEY.match(key):
            plan.unmapped.append(
                {
                    "key": key,
                    "shape": list(shape),
                    "reason": "release camera encoder (VAE latents of Plücker images, one vector per latent "
                    "frame, added inside self-attention): no counterpart in our per-token Plücker path",
                }
            )
            plan.camera_trained |= bool(tensor.ne(0).any())
        else:
            plan.unmapped.append(
                {"key": key, "shape": list(shape), "reason": "unknown key: not in the release layout"}
            )
    plan.unmapped.sort(key=lambda u: u["key"])
    if mismatched:
        raise ActionImagesError(
            f"{len(mismatched)} release tensors do not fit the model's shapes: " + "; ".join(mismatched[:6])
        )
    missing = sorted(set(key_map) - set(plan.mapped))
    if missing:
        show = ", ".join(f"{k} (for {key_map[k]})" for k in missing[:4])
        raise ActionImagesError(
            f"the release lacks {len(missing)} backbone tensors: {show}"
            + (" ..." if len(missing) > 4 else "")
        )
    halves = [b for b, (w, bias) in plan.folded.items() if not (w and bias)]
    partial = sorted(set(range(n_layers)) - set(plan.folded)) if plan.folded else []
    if halves or partial:
        raise ActionImagesError(
            "the release's projectors must be in every block with weight and bias: "
            + (f"incomplete in blocks {halves}; " if halves else "")
            + (f"missing in blocks {partial}" if partial else "")
        )
    return plan


def fold_projector(
    w_o: torch.Tensor, b_o: torch.Tensor, w_p: torch.Tensor, b_p: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One linear from two: ``P(W_o a + b_o) + b_p`` -> ``(W', b')`` = ``(P W_o, P b_o + b_p)``.

    Shapes: ``w_o`` (D, D), ``b_o`` (D,), ``w_p`` (D, D), ``b_p`` (D,) -> (D, D), (D,) in float32;
    computed in float64. An identity projector leaves ``W_o``, ``b_o`` bit for bit.
    """
    eye = torch.eye(w_p.shape[0], dtype=w_p.dtype)
    if torch.equal(w_p, eye) and not b_p.ne(0).any():
        return w_o.float(), b_o.float()
    p = w_p.double()
    return (p @ w_o.double()).float(), (p @ b_o.double() + b_p.double()).float()


def apply_import(source: Mapping[str, torch.Tensor], plan: ImportPlan, model: WorldActionModel) -> list[dict]:
    """Copy the release into ``model`` (float32) and give our other pieces a stated value.

    Returns what was initialised otherwise than from the release, and how. Our tensors that
    neither come from the release, nor from the Wan folder (``latent_space``), nor have a rule here
    are an error: nothing stays at a random initialisation unannounced.
    """
    with torch.no_grad():
        state = {ours: source[src].float() for src, ours in plan.mapped.items()}
        for block, (wk, bk) in plan.folded.items():
            pre = f"transformer.blocks.{block}.attn1.to_out.0."
            state[pre + "weight"], state[pre + "bias"] = fold_projector(
                state[pre + "weight"], state[pre + "bias"], source[wk], source[bk]
            )
        transformer = {k[len("transformer.") :]: v for k, v in state.items()}
        model.transformer.load_state_dict(transformer, strict=True)  # strict: every backbone tensor set

        for proj in model.camera_proj:
            proj.weight.zero_()
            proj.bias.zero_()
        gen = torch.Generator().manual_seed(CAMERA_ENCODER_SEED)
        for layer in model.camera_encoder:
            if isinstance(layer, torch.nn.Linear):  # nn.Linear's default init, drawn from a seeded generator
                bound = 1.0 / layer.in_features**0.5
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=gen) * 2 * bound - bound)
                layer.bias.copy_(torch.rand(layer.bias.shape, generator=gen) * 2 * bound - bound)
        model.stream_embed.zero_()
    initialised = [
        {
            "tensors": "camera_proj.*",
            "how": "zeros",
            "why": "the release's camera encoder has no counterpart (see unmapped); a zero projection "
            "makes our camera term exactly zero: the backbone computes the release's, minus its camera",
        },
        {
            "tensors": "camera_encoder.*",
            "how": f"nn.Linear default uniform init from a generator seeded {CAMERA_ENCODER_SEED}",
            "why": "inert while camera_proj is zero; non-zero so that fine-tuning can learn the camera path "
            "(zeros in both would give zero gradients to both)",
        },
        {
            "tensors": "stream_embed",
            "how": "zeros",
            "why": "the release has no RGB/action stream embedding; zero adds nothing",
        },
    ]
    known = ("transformer.", "latent_space.", "camera_proj.", "camera_encoder.", "stream_embed")
    stray = [k for k in model.state_dict() if not k.startswith(known)]
    if stray:
        raise ActionImagesError(
            f"config {model.spec.name!r} has pieces the release cannot fill and no import rule "
            f"covers: {stray[:4]}"
        )
    return initialised


# ------------------------------------------------------------------------------------- import
DIFFERENCES = [
    "camera conditioning: the release's per-block cam_encoder (VAE latents of Plücker images, one vector "
    "per latent frame, added to the self-attention input) is not imported; the imported model has no "
    "camera conditioning",
    "timesteps: the release feeds one shared timestep to every token, given frames included; our "
    "generate gives given frames t = 0 (Wan 2.2 TI2V's own convention)",
]


def import_release(
    src: str | Path,
    wan: str | Path,
    out: str | Path,
    config: str | ModelConfig = "wan2.2-ti2v-5b",
    dtype: str = "fp32",
    strict: bool = False,
    **changes,
) -> dict:
    """Convert the authors' checkpoint ``src`` into our model folder ``out``; returns the report.

    ``wan`` is a diffusers-format Wan2.2-TI2V-5B folder: its ``transformer/config.json`` fixes the
    architecture the release must fit, its VAE goes into the folder, and its umT5 (named in the
    folder's config) encodes text at load time. ``strict`` turns every unmapped source tensor, and a
    trained camera encoder that cannot be imported, into an error rather than a warning. The report
    is also written to ``out/import_report.json``.
    """
    if dtype not in WEIGHT_DTYPES:
        raise ActionImagesError(f"dtype must be one of {tuple(WEIGHT_DTYPES)}, got {dtype!r}")
    source = read_release(src)
    model = load_pretrained_wan(wan, config, lora_rank=0, load_text_encoder=False, **changes)
    spec = model.spec
    if spec.obs_patch:
        raise ActionImagesError(
            f"config {spec.name!r} has a pixel-space observation encoder (obs_patch {spec.obs_patch}); "
            "the release has none to fill it: use a config with obs_patch 0"
        )
    plan = plan_import(source.tensors, model)
    warnings = []
    if plan.camera_trained:
        warnings.append(
            "the release's camera encoder is trained (non-zero) and cannot be imported: the model runs "
            "without the camera conditioning it was trained with; measure it before trusting it"
        )
    unknown = [u["key"] for u in plan.unmapped if u["reason"].startswith("unknown")]
    if unknown:
        warnings.append(
            f"{len(unknown)} source tensors are not in the release layout and were ignored: {unknown[:4]}"
        )
    if strict and warnings:
        raise ActionImagesError("refused (strict): " + "; ".join(warnings))
    initialised = apply_import(source.tensors, plan, model)
    n_wan = sum(1 for k in model.state_dict() if k.startswith("latent_space."))

    files = [{"name": f.name, "bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in source.files]
    report = {
        "source": {
            "path": str(src),
            "format": source.format,
            "prefix_stripped": source.prefix,
            "tensors": len(source.tensors),
            "files": files,
            "release": RELEASE_REPO,
            "weights": RELEASE_WEIGHTS,
        },
        "wan": str(wan),
        "out": str(out),
        "config": spec.name,
        "mapped": len(plan.mapped),
        "folded": [
            {
                "from": [w, b],
                "into": f"transformer.blocks.{n}.attn1.to_out.0",
                "how": "W' = P W_o, b' = P b_o + b_p",
            }
            for n, (w, b) in sorted(plan.folded.items())
        ],
        "unmapped": plan.unmapped,
        "initialised": initialised,
        "from_wan": {"tensors": n_wan, "what": "latent_space.* (VAE and latent normalisation) from WAN/vae"},
        "shape_mismatches": [],
        "warnings": warnings,
        "differences": DIFFERENCES,
    }
    provenance = {
        "source": str(src),
        "source_files": files,
        "imported_from": RELEASE_WEIGHTS,
        "wan": str(wan),
        "config": spec.name,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    extra = {"import_report.json": (json.dumps(report, indent=1) + "\n").encode()}
    save_model_folder(model, out, dtype, provenance, extra)
    return report
