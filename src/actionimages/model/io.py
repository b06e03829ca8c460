"""Building, saving and loading world-action models.

- :func:`build_model`: a fresh model from a registry name or :class:`ModelConfig`.
- :func:`load_model`: a saved model directory (``config.json`` + safetensors), as written by
  ``model.save_pretrained(dir)`` or the trainer's checkpoints.
- :func:`load_pretrained_wan`: the real Wan 2.2 weights from a diffusers-format directory
  (``transformer/``, ``vae/``, ``text_encoder/``, ``tokenizer/``), optionally with LoRA.
- :func:`save_model_folder`: a self-contained model folder (one safetensors file + ``provenance.json``
  with its SHA-256), written atomically; ``actionimages export`` and ``import-release`` write it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

from actionimages.atomic import atomic_dir, sha256_file
from actionimages.errors import ActionImagesError
from actionimages.model.config import LatentSpec, ModelConfig, TransformerSpec, get_config
from actionimages.model.latents import LatentSpace
from actionimages.model.network import WorldActionModel
from actionimages.model.text import UMT5TextEncoder

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]


def build_model(config: str | ModelConfig, **changes) -> WorldActionModel:
    """A randomly initialised model of a registered config name (or a config object)."""
    cfg = get_config(config, **changes) if isinstance(config, str) else config.replace(**changes)
    return WorldActionModel(spec=cfg.to_dict())


def load_model(
    path: str | Path, device: str | torch.device = "cpu", text_cache: str | Path | None = None
) -> WorldActionModel:
    """Load a model saved with ``save_pretrained`` (a directory with ``config.json`` + ``*.safetensors``).

    A model whose config names a ``pretrained`` Wan directory with a umT5 text encoder gets that
    encoder attached (it is not stored in the checkpoint), or, with ``text_cache``, the cached
    embeddings of ``actionimages embed-text`` instead.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ActionImagesError(f"{path} is not a model directory: no config.json")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ActionImagesError(f"{path} has no *.safetensors weights")
    verify_recorded_checksums(path)  # a flipped byte in the weights or config is refused here
    try:
        model = WorldActionModel.from_pretrained(str(path), low_cpu_mem_usage=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ActionImagesError(f"cannot load the model in {path}: {exc}") from exc
    _check_weights_match(model, files, path)
    if model.spec.text.kind == "umt5" and text_cache is not None:
        from actionimages.model.text_cache import CachedTextEncoder

        model.attach_text_encoder(CachedTextEncoder(text_cache))  # umT5 stays off the device
    elif model.spec.text.kind == "umt5":
        if not model.spec.pretrained:
            raise ActionImagesError(
                f"{path}: a umT5 model needs config 'pretrained' pointing to its Wan folder"
            )
        model.attach_text_encoder(
            UMT5TextEncoder.from_pretrained(model.spec.pretrained, model.spec.text.max_tokens)
        )
    return model.to(device)


def verify_recorded_checksums(folder: str | Path) -> None:
    """Re-hash what is recorded about a model folder before anything is loaded from it.

    - ``provenance.json`` (``actionimages export``, ``import-release``): the weights' size and
      SHA-256 and, for folders exported since they were recorded, those of ``config.json`` /
      ``baseline.json`` (:func:`verify_provenance`);
    - ``checksums.json`` of a trainer checkpoint, the folder's own or, for ``step-N/model/``, its
      step directory's (:func:`~actionimages.train.checkpoint.verify_folder_checksums`, as resuming
      checks it).

    A folder with neither passes. A missing, truncated or changed file raises
    :class:`ActionImagesError` naming it (a changed one with the recorded and the found SHA-256).
    """
    from actionimages.train.checkpoint import verify_folder_checksums

    folder = Path(folder)
    verify_provenance(folder)
    verify_folder_checksums(folder)


CONFIG_FILES = ("config.json", "baseline.json")
"""The files describing a model that ``provenance.json`` records beside the weights."""


def verify_provenance(path: Path) -> None:
    """If ``provenance.json`` (``actionimages export``) records the weights' SHA-256, check it, and
    the SHA-256 of the config files it records (``config_sha256``; folders exported before it was
    recorded have none, and their config files are not checked)."""
    prov = path / "provenance.json"
    if not prov.is_file():
        return
    try:
        info = json.loads(prov.read_text())
    except json.JSONDecodeError as exc:
        raise ActionImagesError(f"{prov} is not valid JSON: {exc}") from exc
    if not isinstance(info, dict):
        raise ActionImagesError(f"{prov} is not a JSON object")
    name, want = info.get("weights"), info.get("weights_sha256")
    recorded = info.get("config_sha256") or {}
    if not isinstance(recorded, dict):
        raise ActionImagesError(f"{prov}: config_sha256 is not a JSON object")
    if name and want:
        recorded = {name: want, **recorded}
    for fname, digest in recorded.items():
        f = path / fname
        if not f.is_file():
            raise ActionImagesError(f"{path}: provenance.json names {fname}, which is missing")
        size, got_size = info.get("weights_bytes") if fname == name else None, f.stat().st_size
        if isinstance(size, int) and got_size != size:
            kind = "truncated" if got_size < size else "longer than exported"
            raise ActionImagesError(
                f"{f} changed since export: {kind} ({got_size} bytes; provenance.json records {size})"
            )
        got = sha256_file(f)
        if got != digest:
            raise ActionImagesError(
                f"{f} changed since export: SHA-256 {got[:12]}… "
                f"but provenance.json records {str(digest)[:12]}…"
            )


WEIGHT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def save_model_folder(
    model: WorldActionModel,
    out: str | Path,
    dtype: str,
    provenance: dict,
    extra_files: dict[str, bytes] | None = None,
) -> dict:
    """Write ``model`` to the folder ``out`` (replaced atomically): ``config.json``, one
    ``diffusion_pytorch_model.safetensors`` in ``dtype`` and ``provenance.json`` = ``provenance`` plus
    the weights' name, size and SHA-256 (checked by :func:`load_model`); returns that record.

    The weights stay in one file, whatever their size, because the provenance check reads one file.
    ``extra_files`` (name -> bytes) are written beside them.
    """
    if dtype not in WEIGHT_DTYPES:
        raise ActionImagesError(f"dtype must be one of {tuple(WEIGHT_DTYPES)}, got {dtype!r}")
    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its cast warning names no module here: all are cast
    with atomic_dir(out) as tmp:
        try:
            model.to(WEIGHT_DTYPES[dtype]).save_pretrained(
                str(tmp), safe_serialization=True, max_shard_size="100000GB"
            )
        finally:
            diffusers_logging.set_verbosity(level)
        params = sum(p.numel() for p in model.parameters())
        return write_provenance(tmp, next(tmp.glob("*.safetensors")), dtype, params, provenance, extra_files)


def write_provenance(
    folder: Path,
    weights: Path,
    dtype: str,
    parameters: int,
    provenance: dict,
    extra_files: dict[str, bytes] | None = None,
) -> dict:
    """Write ``folder/provenance.json`` = ``provenance`` plus the dtype, parameter count, the
    weights' name, size and SHA-256 and the SHA-256 of the config files already in ``folder``
    (``config_sha256``; what :func:`verify_provenance` checks), and ``extra_files``
    (name -> bytes) beside it; returns that record. Used inside an :func:`atomic_dir` block."""
    info = {
        **provenance,
        "dtype": dtype,
        "parameters": parameters,
        "weights": weights.name,
        "weights_bytes": weights.stat().st_size,
        "weights_sha256": sha256_file(weights),
        "config_sha256": {n: sha256_file(folder / n) for n in CONFIG_FILES if (folder / n).is_file()},
    }
    (folder / "provenance.json").write_text(json.dumps(info, indent=1) + "\n")
    for name, data in (extra_files or {}).items():
        (folder / name).write_bytes(data)
    return info


def state_dict_mismatch(
    expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str], list[str]]:
    """Sorted names (missing from ``given``, unexpected in it, present in both with another shape)."""
    missing, unexpected = sorted(expected.keys() - given.keys()), sorted(given.keys() - expected.keys())
    reshaped = sorted(k for k in expected.keys() & given.keys() if expected[k].shape != given[k].shape)
    return missing, unexpected, reshaped


def _check_weights_match(model: WorldActionModel, files: list[Path], path: Path) -> None:
    """Strict loading: every tensor of the model is in the files and every tensor in the files is
    in the model (a config.json edited to another architecture must not load half-random)."""
    from safetensors import safe_open

    stored: set[str] = set()
    for f in files:
        with safe_open(str(f), "pt") as sf:
            stored.update(sf.keys())
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - stored), sorted(stored - expected)
    if missing or unexpected:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

        raise ActionImagesError(
            f"the weights in {path} do not match its config.json: "
            + "; ".join(
                part
                for part in (
                    f"{len(missing)} tensors missing ({show(missing)})" if missing else "",
                    f"{len(unexpected)} unexpected ({show(unexpected)})" if unexpected else "",
                )
                if part
            )
        )


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ActionImagesError(f"missing {path}")
    return json.loads(path.read_text())


def load_pretrained_wan(
    root: str | Path,
    config: str | ModelConfig = "wan2.2-ti2v-5b",
    lora_rank: int | None = None,
    dtype: torch.dtype = torch.float32,
    load_text_encoder: bool = True,
    **changes,
) -> WorldActionModel:
    """A world-action model around pretrained Wan 2.2 weights in a diffusers folder ``root``.

    The architecture is read from ``root/transformer/config.json`` and ``root/vae/config.json``
    (so a small random checkpoint in the same layout loads too); our extra pieces (camera
    encoder, stream embedding) start zero-initialised. With ``lora_rank > 0`` the transformer gets
    peft LoRA adapters on its attention and FFN projections and only those (plus our extra
    pieces) train.
    """
    root = Path(root)
    base = get_config(config) if isinstance(config, str) else config
    tcfg = _read_json(root / "transformer" / "config.json")
    vcfg = _read_json(root / "vae" / "config.json")
    tr = TransformerSpec(
        patch_size=tuple(tcfg.get("patch_size", (1, 2, 2))),
        num_attention_heads=tcfg["num_attention_heads"],
        attention_head_dim=tcfg["attention_head_dim"],
        num_layers=tcfg["num_layers"],
        ffn_dim=tcfg["ffn_dim"],
        text_dim=tcfg["text_dim"],
        freq_dim=tcfg.get("freq_dim", 256),
        cross_attn_norm=tcfg.get("cross_attn_norm", True),
        qk_norm=tcfg.get("qk_norm", "rms_norm_across_heads"),
        rope_max_seq_len=tcfg.get("rope_max_seq_len", 1024),
    )
    lat = LatentSpec(
        kind="wan_vae",
        base_dim=vcfg["base_dim"],
        decoder_base_dim=vcfg.get("decoder_base_dim"),
        z_dim=vcfg["z_dim"],
        dim_mult=tuple(vcfg.get("dim_mult", (1, 2, 4, 4))),
        num_res_blocks=vcfg.get("num_res_blocks", 2),
        temporal_downsample=tuple(vcfg.get("temperal_downsample", (False, True, True))),
        is_residual=vcfg.get("is_residual", False),
        patch_size=vcfg.get("patch_size"),
        spatial=vcfg.get("scale_factor_spatial", 8),
        temporal=vcfg.get("scale_factor_temporal", 4),
    )
    if tcfg["in_channels"] != lat.z_dim:
        raise ActionImagesError(f"transformer in_channels {tcfg['in_channels']} != VAE z_dim {lat.z_dim}")
    text = base.text.__class__(**{**base.text.__dict__, "kind": "umt5", "dim": tr.text_dim})
    rank = base.lora_rank if lora_rank is None else lora_rank
    cfg = base.replace(transformer=tr, latent=lat, text=text, pretrained=str(root), lora_rank=rank, **changes)
    model = WorldActionModel(spec=cfg.to_dict())

    transformer = WanTransformer3DModel.from_pretrained(str(root), subfolder="transformer", torch_dtype=dtype)
    vae = AutoencoderKLWan.from_pretrained(str(root), subfolder="vae", torch_dtype=dtype)
    model.transformer = transformer
    space = LatentSpace(lat, vae=vae)
    mean, std = vae.config.get("latents_mean"), vae.config.get("latents_std")
    if mean is not None and std is not None and len(mean) == lat.z_dim:
        space.set_stats(torch.tensor(mean), torch.tensor(std))
    model.latent_space = space
    if rank > 0:
        add_lora(model, rank)
    if load_text_encoder:
        model.attach_text_encoder(UMT5TextEncoder.from_pretrained(str(root), cfg.text.max_tokens, dtype))
    return model


def load_vae(path: str | Path) -> AutoencoderKLWan:
    """A Wan VAE saved with ``save_pretrained`` (e.g. ``actionimages train-vae``'s ``out/vae``)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ActionImagesError(f"{path} is not a VAE directory: no config.json")
    verify_recorded_checksums(path)  # e.g. a train-vae checkpoint's step-N/vae/
    return AutoencoderKLWan.from_pretrained(str(path))


SHIPPED_TINY = Path(__file__).resolve().parents[3] / "checkpoints" / "tiny"
"""The pretrained ``tiny`` checkpoint in a source checkout (its VAE is the default for ``tiny``)."""


def _is_world_model_dir(path: Path) -> bool:
    try:
        return "spec" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False


def set_vae(model: WorldActionModel, vae: AutoencoderKLWan | str | Path) -> None:
    """Put a trained VAE into ``model``'s latent space, with its latent stats.

    ``vae`` is a VAE object, a VAE directory (``train-vae``'s ``out/vae``) or a world-model
    checkpoint (e.g. ``checkpoints/tiny``), whose autoencoder and latent normalisation are taken.
    The VAE must match the config's latent spec (z_dim, compression); its ``latents_mean`` /
    ``latents_std`` config fields become the latent normalisation.
    """
    if isinstance(vae, (str, Path)) and _is_world_model_dir(Path(vae)):
        donor = load_model(vae).latent_space
        if donor.vae is None:
            raise ActionImagesError(f"{vae} is a pixel-space model; it has no VAE to take")
        set_vae(model, donor.vae)
        model.latent_space.set_stats(donor.mean, donor.std)  # the donor's measured normalisation
        return
    if not isinstance(vae, AutoencoderKLWan):
        vae = load_vae(vae)
    spec = model.spec.latent
    if spec.kind != "wan_vae":
        raise ActionImagesError(f"config {model.spec.name!r} has no VAE (latent kind {spec.kind!r})")
    c = vae.config
    got = (c.z_dim, c.base_dim, c.scale_factor_spatial, c.scale_factor_temporal, c.patch_size)
    want = (spec.z_dim, spec.base_dim, spec.spatial, spec.temporal, spec.patch_size)
    if got != want:
        raise ActionImagesError(
            f"VAE (z_dim, base_dim, spatial, temporal, patch) {got} does not match the config's {want}"
        )
    space = LatentSpace(spec, vae=vae).to(model.device)
    mean, std = vae.config.get("latents_mean"), vae.config.get("latents_std")
    if mean is not None and std is not None and len(mean) == spec.z_dim:
        space.set_stats(torch.tensor(mean), torch.tensor(std))
    model.latent_space = space


def add_lora(model: WorldActionModel, rank: int, alpha: float | None = None) -> None:
    """Freeze the transformer and add peft LoRA adapters (rank ``rank``) to its projections."""
    from peft import LoraConfig

    if rank <= 0:
        raise ActionImagesError(f"LoRA rank must be positive, got {rank}")
    model.transformer.requires_grad_(False)
    lcfg = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=LORA_TARGETS, init_lora_weights=True)
    model.transformer.add_adapter(lcfg)
