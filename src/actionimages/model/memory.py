"""How much memory training and one replanning call need, per device (``actionimages plan-memory``).

Parameters are counted exactly (the model is built on the meta device, so even the 5B config
costs nothing). Activations follow a per-token, per-block model fitted to the tensors autograd
saves for backward (measured with ``torch.autograd.graph.saved_tensors_hooks`` on six transformer
shapes, within 2%; ``benchmarks/memory.py``):

    elements saved per token and block = 31.3·D + 2.0·F + 2.5·H·Lc       (no checkpointing)
    with gradient checkpointing: D per token and block, plus one block recomputed at a time

D: width, F: FFN width, H: heads, Lc: cross-attention context (text + observation tokens).
Self-attention scores are not stored (PyTorch's SDPA uses a flash kernel on CPU and GPU).
Outside the blocks: about 14·D per token (embeddings, the per-token modulation all blocks read,
the output head) and the observation stem's feature maps (99 elements per input pixel).

Training assumes AdamW with fp32 trainable weights, fp32 gradients and two fp32 moments;
frozen weights (the VAE, the text encoder, the base model under LoRA) in ``weights_dtype``.
ZeRO stage 2 shards gradients and optimizer state over ``gpus``, stage 3 the trainable weights too.

The runtime line is what a process holds besides its tensors (issue 23):

- ``device="cpu"`` (host memory is the device's): the framework, 0.46 GiB resident after importing
  torch, diffusers, accelerate and this package (measured, 2026-12-07, AMD EPYC, torch 2.13 CPU);
  and the trainer's latent cache (``cache_samples`` prepared samples kept on the host, each its
  latents, camera features and uint8 current frames; :func:`cache_sample_bytes`).
- ``device="cuda"``: the CUDA context, about 0.4 GiB with CUDA ≥ 11.7's lazy module loading
  (pytorch/pytorch#109888; not measured here: no GPU has been lent). The framework and the cache
  live in host memory (``host_runtime_gib``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from actionimages.errors import ActionImagesError
from actionimages.model.config import ModelConfig

GIB = 2**30
ACT_D, ACT_F, ACT_CROSS = 31.3, 2.0, 2.5  # fitted constants (module docstring)
ACT_OUTSIDE = 14.0  # per token, outside the blocks: patch embedding, per-token modulation, head (× D)
STEM_PER_PIXEL = 99.0  # the observation stem's saved feature maps per input pixel (widths 32, 64)
UMT5_XXL_PARAMS = 5_680_910_336  # umT5-XXL encoder (d_model 4096, 24 layers), counted on the meta device
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
FRAMEWORK_GIB = 0.46  # resident set after the imports (module docstring; measured on the CPU)
CUDA_CONTEXT_GIB = 0.4  # per GPU process (cited, module docstring; not measured here)
DEVICES = ("cuda", "cpu")


@dataclass
class MemoryPlan:
    """GiB per device (``*_gib``) and the counts behind them."""

    config: str
    batch_size: int
    tokens: int
    params_transformer: int
    params_trainable: int
    params_frozen: int
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    text_encoder_gib: float
    runtime_gib: float  # framework / CUDA context and, on a CPU, the latent cache (module docstring)
    host_runtime_gib: float  # framework + latent cache in host memory (= runtime_gib on a CPU)
    train_total_gib: float
    inference_total_gib: float
    device: str = "cuda"
    fits: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def peak_rss_bytes() -> int:
    """This process's peak resident set since it started (exec), in bytes.

    Linux's ``getrusage(RUSAGE_SELF).ru_maxrss`` carries the *parent's* high-water mark across
    fork + exec, so a benchmark started from a large process (a test runner at 1 GiB) would report
    the parent's peak; ``VmHWM`` in ``/proc/self/status`` belongs to this process's own memory map.
    Elsewhere (no /proc) ``ru_maxrss`` is the fallback."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux kB


def count_parameters(cfg: ModelConfig) -> dict[str, int]:
    """Parameters by part, from a model built on the meta device (no memory, no weights)."""
    from actionimages.model.network import WorldActionModel

    with torch.device("meta"):
        model = WorldActionModel(spec=cfg.to_dict())
    parts = model.num_parameters_by_part()
    parts["other"] = sum(p.numel() for p in model.parameters()) - sum(parts.values())  # stream embedding
    if cfg.text.kind == "umt5":
        parts["text_encoder"] = UMT5_XXL_PARAMS if cfg.text.dim == 4096 else 0
    return parts


def cache_sample_bytes(cfg: ModelConfig) -> int:
    """Host bytes of one sample in the trainer's latent cache (``train.data.PreparedCache``)."""
    h, w = cfg.latent_hw
    hp, wp = cfg.token_hw
    f = cfg.latent_frames
    latents = cfg.latent.channels * cfg.num_segments * f * h * w * 4
    camera = cfg.num_views * f * hp * wp * 6 * cfg.plucker_subgrid**2 * 4
    frames = cfg.num_views * 3 * cfg.height * cfg.width if cfg.obs_patch else 0  # uint8
    return latents + camera + frames + f * 4


def lora_parameters(cfg: ModelConfig, rank: int) -> int:
    """LoRA parameters on the transformer's attention and FFN projections (model/io.py's targets)."""
    tr = cfg.transformer
    d, f = tr.dim, tr.ffn_dim
    per_block = 2 * (4 * rank * (d + d)) + rank * (d + f) + rank * (f + d)  # self + cross attention, FFN
    return tr.num_layers * per_block


def activation_elements(cfg: ModelConfig, tokens: int, checkpointing: bool, peak: bool = True) -> float:
    """Elements autograd keeps for backward, per sample.

    ``peak`` adds, with checkpointing, the one block recomputed during backward (what a memory
    peak sees; the tensors saved in the forward pass alone do not include it).
    """
    tr = cfg.transformer
    lc = cfg.text.max_tokens
    stem = 0.0
    if cfg.obs_patch:  # observation tokens: cross-attention context, and the pixel stem's feature maps
        lc += cfg.num_views * (cfg.height // cfg.obs_patch) * (cfg.width // cfg.obs_patch)
        stem = STEM_PER_PIXEL * cfg.num_views * cfg.height * cfg.width
    block = ACT_D * tr.dim + ACT_F * tr.ffn_dim + ACT_CROSS * tr.num_attention_heads * lc
    outside = tokens * ACT_OUTSIDE * tr.dim + stem  # embeddings, per-token modulation, output head
    if checkpointing:
        return outside + tokens * (tr.num_layers * tr.dim + (block if peak else 0.0))
    return outside + tokens * tr.num_layers * block


def plan_memory(
    cfg: ModelConfig,
    batch_size: int = 1,
    frames: int | None = None,
    size: int | None = None,
    lora_rank: int | None = None,
    zero: int = 0,
    gpus: int = 1,
    gradient_checkpointing: bool | None = None,
    weights_dtype: str = "bf16",
    activations_dtype: str = "bf16",
    text_encoder_on_device: bool = False,
    guidance: bool = True,
    memory_gib: float | None = None,
    device: str = "cuda",
    cache_samples: int = 0,
) -> MemoryPlan:
    """The per-device memory of training ``cfg`` and of one replanning call (see module docstring).

    ``device``: "cuda" (a GPU's memory) or "cpu" (the host's); ``cache_samples``: training samples
    the latent cache holds (a dataset's clips: episodes × clips per episode; 0 without a cache).
    """
    if batch_size < 1 or gpus < 1 or zero not in (0, 2, 3):
        raise ActionImagesError("batch_size and gpus must be >= 1 and zero one of 0, 2, 3")
    if device not in DEVICES:
        raise ActionImagesError(f"device must be one of {DEVICES}, got {device!r}")
    if cache_samples < 0:
        raise ActionImagesError(f"cache_samples must be >= 0, got {cache_samples}")
    for name, dt in (("weights_dtype", weights_dtype), ("activations_dtype", activations_dtype)):
        if dt not in DTYPE_BYTES:
            raise ActionImagesError(f"{name} must be one of {sorted(DTYPE_BYTES)}, got {dt!r}")
    changes: dict[str, Any] = {}
    if frames is not None:
        changes["num_frames"] = frames
    if size is not None:
        changes.update(height=size, width=size)
    cfg = cfg.replace(**changes) if changes else cfg
    ckpt = cfg.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
    rank = cfg.lora_rank if lora_rank is None else lora_rank
    parts = count_parameters(cfg)
    text = parts.pop("text_encoder", 0) if cfg.text.kind == "umt5" else 0
    vae = parts.pop("latent_space", 0)
    ours = sum(v for k, v in parts.items() if k != "transformer")  # camera, observation, hashed text
    if rank:
        trainable = lora_parameters(cfg, rank) + ours
        frozen = parts["transformer"] + vae
    else:
        trainable = parts["transformer"] + ours
        frozen = vae
    wb = DTYPE_BYTES[weights_dtype]
    shard_w = gpus if zero == 3 else 1
    shard_o = gpus if zero >= 2 else 1
    weights = (trainable * 4 / shard_w + frozen * wb) / GIB
    grads = trainable * 4 / shard_o / GIB
    optim = trainable * 8 / shard_o / GIB
    act = activation_elements(cfg, cfg.num_tokens, ckpt) * batch_size * DTYPE_BYTES[activations_dtype] / GIB
    text_gib = text * wb / GIB if text_encoder_on_device else 0.0
    host = FRAMEWORK_GIB + cache_samples * cache_sample_bytes(cfg) / GIB
    runtime = host if device == "cpu" else CUDA_CONTEXT_GIB
    train = weights + grads + optim + act + text_gib + runtime
    tr = cfg.transformer
    branches = 2 if guidance else 1  # classifier-free guidance runs both branches in one batch
    work = cfg.num_tokens * branches * (4 * tr.dim + tr.ffn_dim) * 2 / GIB  # one block's working set
    infer_runtime = FRAMEWORK_GIB if device == "cpu" else CUDA_CONTEXT_GIB  # no training cache
    infer = (parts["transformer"] + ours + vae) * wb / GIB + text_gib + work + infer_runtime
    return MemoryPlan(
        config=cfg.name,
        batch_size=batch_size,
        tokens=cfg.num_tokens,
        params_transformer=parts["transformer"],
        params_trainable=trainable,
        params_frozen=frozen,
        weights_gib=weights,
        gradients_gib=grads,
        optimizer_gib=optim,
        activations_gib=act,
        text_encoder_gib=text_gib,
        runtime_gib=runtime,
        host_runtime_gib=host,
        train_total_gib=train,
        inference_total_gib=infer,
        device=device,
        fits=None if memory_gib is None else bool(train <= memory_gib),
    )
