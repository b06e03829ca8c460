"""``actionimages train`` (the world-action model) and ``actionimages train-vae`` (option (a)'s VAE)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from actionimages.cli.ranges import COUNT, NONNEGATIVE, float_above, float_at_least, float_range
from actionimages.errors import ActionImagesError

# Bounds of the TrainConfig / VAETrainConfig flags, checked when the command line is parsed.
TRAIN_RANGES = {
    "steps": COUNT,
    "batch_size": COUNT,
    "lr": float_above(0),
    "weight_decay": float_at_least(0),
    "betas": float_range(0, 1, high_open=True),  # each of Adam's two
    "warmup": NONNEGATIVE,
    "grad_clip": float_above(0),
    "ema_decay": float_range(0, 1),
    "log_every": COUNT,
    "save_every": NONNEGATIVE,  # 0: only the final checkpoint
    "keep": NONNEGATIVE,  # 0: keep every checkpoint
    "state_mib": float_at_least(0),  # 0: no run state
}
VAE_RANGES = {
    "steps": COUNT,
    "batch_size": COUNT,
    "lr": float_above(0),
    "warmup": NONNEGATIVE,
    "lr_min_frac": float_range(0, 1),
    "grad_clip": float_above(0),
    "kl_weight": float_at_least(0),
    "action_weight": float_at_least(0),
    "save_every": NONNEGATIVE,
    "keep": NONNEGATIVE,
    "stats_samples": COUNT,
    "crop_frames": NONNEGATIVE,  # 0 or none: whole clips
    "crop_size": NONNEGATIVE,  # 0 or none: whole frames
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the world-action model (masked rectified flow)",
        description="Train a world-action model. Single CPU process by default; on GPUs run "
        "`accelerate launch --config_file configs/accelerate/ddp.yaml -m actionimages.cli.train ...`.",
    )
    p.add_argument(
        "--config", default="tiny", help="model config name (tiny, tiny-pixel, small, wan2.2-ti2v-5b)"
    )
    p.add_argument(
        "--data",
        help="dataset directory, or synthetic:N for N synthetic clips (--resume: the run's own by default)",
    )
    p.add_argument("--out", help="run directory (with --resume RUN: RUN)")
    p.add_argument(
        "--vae",
        help="trained VAE (train-vae's OUT/vae, or a world-model checkpoint whose VAE to take); "
        "tiny defaults to the shipped checkpoints/tiny",
    )
    p.add_argument("--pretrained", help="diffusers-format Wan 2.2 folder (for wan2.2-ti2v-5b)")
    p.add_argument(
        "--lora-rank", type=NONNEGATIVE, default=None, help="LoRA rank for a pretrained model (0: full)"
    )
    p.add_argument("--text-cache", help="embed-text's cache: umT5 embeddings instead of umT5 on the device")
    p.add_argument(
        "--init-from",
        metavar="CKPT",
        help="fine-tune: start from this model's weights, architecture and VAE (a model dir, checkpoint "
        "step or run, e.g. checkpoints/tiny); --config is then ignored, --model.* may change only "
        "what leaves the weights' shapes alone (mask mix, text dropout, ...)",
    )
    from actionimages.cli.config_args import add_dataclass_flags, add_override_flags
    from actionimages.model.config import ModelConfig
    from actionimages.train.trainer import TrainConfig

    # Every TrainConfig field is a flag (--steps, --batch-size (per process), --lr, --save-every, ...);
    # with --resume an absent flag keeps the run's own setting (OUT/train_config.json).
    add_dataclass_flags(p, TrainConfig, unset=True, ranges=TRAIN_RANGES)
    p.add_argument("--no-cache", dest="cache_latents", action="store_false", help="= --no-cache-latents")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN",
        help="continue the run in RUN (or --out) from its newest checkpoint or, on a fresh clone, its "
        "committed state RUN/state/ (docs/RUNS.md); the model, data and settings are the run's own",
    )
    p.add_argument(
        "--allow-data-change",
        action="store_true",
        help="with --resume: continue on other --data than the run started with (refused otherwise)",
    )
    # Clip settings (default in CLIP_DEFAULTS) are saved in OUT/clip_config.json: --resume keeps them.
    p.add_argument("--stride", type=COUNT, help="episode frames between clip frames (default 1)")
    p.add_argument("--clips-per-episode", type=COUNT, help="distinct clips drawn per episode (default 16)")
    p.add_argument(
        "--hold-final",
        type=NONNEGATIVE,
        metavar="N",
        help="clips may run N frames past an episode's end, the arm holding its last pose (teaches "
        "stopping at the goal; for sim data, whose world stays put after success; default 0)",
    )
    # ... and every ModelConfig field can be changed: --model.obs_align false, --model.mask_mix.i2a 0.3
    add_override_flags(p, ModelConfig, "model", skip=("name", "pretrained", "lora_rank"))
    p.set_defaults(func=run_train)

    v = subparsers.add_parser(
        "train-vae",
        help="train the small Wan VAE of a tiny/small config on your data",
        description="Train option (a)'s small AutoencoderKLWan on RGB and action-image clips.",
    )
    v.add_argument("--config", default="tiny")
    v.add_argument("--data", required=True, help="dataset directory, or synthetic:N")
    v.add_argument("--out", required=True)
    from actionimages.train.vae import VAETrainConfig

    add_dataclass_flags(
        v, VAETrainConfig, ranges=VAE_RANGES
    )  # --steps, --batch-size, --lr, --crop-frames (0/none: whole), ...
    v.add_argument("--resume", action="store_true")
    v.add_argument("--stride", type=COUNT, default=1)
    v.add_argument("--clips-per-episode", type=COUNT, default=16)
    v.set_defaults(func=run_train_vae)


CLIP_DEFAULTS = {"stride": 1, "clips_per_episode": 16, "hold_final": 0}


def clip_settings(args: argparse.Namespace, out: Path, save: bool = True) -> dict[str, int]:
    """The run's clip settings: flags, then (with ``--resume``) OUT/clip_config.json, then defaults.

    The clip pool is part of what resume must reproduce, so on resume a flag that contradicts the
    run's saved value is an error rather than a silently different dataset. A fresh run writes
    its own settings (over a stale file's).
    """
    from actionimages.atomic import write_json_atomic
    from actionimages.train.run_state import read_state_record

    path = out / "clip_config.json"
    resume = getattr(args, "resume", False)
    saved = json.loads(path.read_text()) if resume and path.is_file() else None
    if resume and saved is None:  # a fresh clone: the committed run state has them
        saved = (read_state_record(out) or {}).get("clip_config")
    settings = {}
    for key, default in CLIP_DEFAULTS.items():
        flag = getattr(args, key, None)
        kept = (saved or {}).get(key, default)
        if saved is not None and flag is not None and flag != kept:
            raise ActionImagesError(
                f"--{key.replace('_', '-')} {flag} differs from this run's {kept} ({path}): it would "
                "change the clips the run trains on; drop the flag or start a new --out"
            )
        settings[key] = int(flag if flag is not None else kept)
    if save and (saved is None or not path.is_file()):  # a fresh run, or one resumed from its state
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, settings, indent=1)
    return settings


def newest_checkpoint_record(out: Path) -> dict | None:
    """The ``state.json`` of the run's newest checkpoint (None if it has none or it is unreadable)."""
    from actionimages.train.checkpoint import list_checkpoints

    for ck in reversed(list_checkpoints(out / "checkpoints")):
        try:
            return json.loads((ck / "state.json").read_text())
        except (OSError, ValueError):
            continue
    return None


def check_same_data(args: argparse.Namespace, record: dict, fingerprint: str | None, out: Path) -> None:
    """A resumed run trains on the data it started with, unless ``--allow-data-change`` says otherwise.

    Compared by the data's fingerprint (its episodes, wherever the folder lives) when the run
    recorded one, else by path."""
    recorded, path = record.get("data_fingerprint"), record.get("data")
    if recorded is not None and fingerprint is not None:
        same = recorded == fingerprint
    elif path is not None:
        same = Path(path).resolve() == Path(args.data).resolve() or Path(path) == Path(args.data)
    else:
        return
    if same:
        return
    if getattr(args, "allow_data_change", False):
        print(
            f"note: --allow-data-change: {out} trained on {path}; it continues on {args.data}",
            file=sys.stderr,
        )
        return
    raise ActionImagesError(
        f"--data {args.data} is not the data {out} trained on ({path}, another set of episodes): resuming "
        "would switch datasets mid-run; pass --allow-data-change to do it on purpose, or start a new --out"
    )


def config_with_overrides(cfg, overrides: dict):
    """``cfg`` with the ``--model.*`` overrides applied; a config they make invalid is an error naming
    the flags given (the config's own check names the field)."""
    from actionimages.cli.config_args import apply_overrides

    try:
        return apply_overrides(cfg, overrides)
    except ActionImagesError as exc:
        given = " ".join(f"--model.{k} {v}" for k, v in overrides.items())
        raise ActionImagesError(f"config {cfg.name!r} with {given}: {exc}") from exc


def run_train(args: argparse.Namespace) -> int:
    from actionimages.cli.config_args import dataclass_from_flags, overrides_from_flags
    from actionimages.model import build_model, get_config, load_pretrained_wan, set_vae
    from actionimages.model.io import SHIPPED_TINY
    from actionimages.train import TrainConfig, Trainer, open_training_source
    from actionimages.train.data import data_fingerprint
    from actionimages.train.run_state import read_state_record

    if isinstance(args.resume, str):
        if args.out and Path(args.out) != Path(args.resume):
            raise ActionImagesError(f"--resume {args.resume} and --out {args.out} name different runs")
        args.out = args.resume
    if not args.out:
        raise ActionImagesError("--out is required (or --resume RUN)")
    out = Path(args.out)
    record = read_state_record(out) if args.resume else None
    if args.resume and not (out / "checkpoints").is_dir() and record is None:
        raise ActionImagesError(f"--resume: {out} has neither checkpoints/ nor a committed state/ to resume")
    if args.resume and record is None:  # resuming from checkpoints/: the newest one's record
        record_of_run = newest_checkpoint_record(out)
    else:
        record_of_run = record
    if args.data is None:
        if not (record_of_run and record_of_run.get("data")):
            raise ActionImagesError("--data is required (a dataset directory or synthetic:N)")
        args.data = record_of_run["data"]
        print(f"note: training on the run's own data, {args.data}", file=sys.stderr)
    fingerprint = data_fingerprint(args.data)
    if record_of_run is not None:
        check_same_data(args, record_of_run, fingerprint, out)
    overrides = overrides_from_flags(args, "model")
    clips = clip_settings(args, out, save=False)  # written once the run is known to be valid
    if clips["stride"] != 1:  # the model's plans' poses are that many control steps apart
        overrides.setdefault("frame_stride", clips["stride"])
    cfg = config_with_overrides(get_config(args.config), overrides)
    if record is not None and not args.init_from and not args.pretrained:
        # The run's own architecture (a fresh clone has no other record of its --model flags).
        from actionimages.model.config import ModelConfig

        cfg = ModelConfig.from_dict(record["model_config"])
        args.config = cfg.name
    if args.init_from and (args.pretrained or args.vae):
        raise ActionImagesError("--init-from brings its own weights and VAE: drop --pretrained / --vae")
    notes = []  # printed once the data opened and OUT was written: a refused run prints its error alone
    if args.init_from:
        model = model_to_fine_tune(args.init_from, overrides, args.text_cache)
    elif args.pretrained:
        model = load_pretrained_wan(
            args.pretrained, cfg, lora_rank=args.lora_rank, load_text_encoder=not args.text_cache
        )
        if args.text_cache:
            from actionimages.model.text_cache import CachedTextEncoder, encoder_hash

            model.attach_text_encoder(CachedTextEncoder(args.text_cache, encoder_hash(args.pretrained)))
    else:
        if cfg.text.kind == "umt5":
            raise ActionImagesError(
                f"config {args.config!r} needs --pretrained (its umT5 text encoder and weights)"
            )
        model = build_model(cfg)
        if args.vae and cfg.latent.kind != "wan_vae":
            notes.append(f"note: config {args.config!r} works in pixel space; --vae is ignored")
        elif args.vae:
            set_vae(model, args.vae)
        elif cfg.latent.kind == "wan_vae" and not args.resume:
            if args.config != "tiny" or not (SHIPPED_TINY / "config.json").is_file():
                raise ActionImagesError(
                    f"config {args.config!r} needs a trained VAE (actionimages train-vae; --vae OUT/vae)"
                )
            notes.append(
                f"note: using the shipped tiny autoencoder ({SHIPPED_TINY}); pass --vae to use another"
            )
            set_vae(model, SHIPPED_TINY)
    saved = None
    if args.resume and (out / "train_config.json").is_file():
        saved = json.loads((out / "train_config.json").read_text())
    elif record is not None:
        saved = record["train_config"]
    tcfg = dataclass_from_flags(TrainConfig, args, saved=saved)
    source = open_training_source(  # before anything is written: bad --data leaves no OUT behind
        args.data, model.spec, clips["stride"], clips["clips_per_episode"], tcfg.seed, clips["hold_final"]
    )
    same_size = record is None or int(record.get("num_samples", len(source))) == len(source)
    if not same_size and not args.allow_data_change:
        raise ActionImagesError(
            f"--data {args.data} gives {len(source)} training clips; the run trained on "
            f"{record['num_samples']} from {record.get('data')}: resume on the same data (its recipe: "
            f"{out / 'README.md'}) or start a new --out"
        )
    clip_settings(args, out)
    for note in notes:
        print(note, file=sys.stderr)
    trainer = Trainer(model, source, out, tcfg)
    trainer.run_info = {"data": args.data, "data_fingerprint": fingerprint, "clip_config": clips}
    if args.resume and not trainer.resume():
        raise ActionImagesError(f"--resume: no checkpoint in {Path(args.out) / 'checkpoints'}")
    if args.resume:
        print(f"resuming {trainer.resumed_from} at step {trainer.step} of {tcfg.steps}", file=sys.stderr)
        if trainer.step >= tcfg.steps:
            print(f"note: the run is already at step {trainer.step}; pass --steps N (> {trainer.step}) "
                  "to train further", file=sys.stderr)  # fmt: skip
    losses = trainer.fit()
    trainer.save()
    path = trainer.export()
    if trainer.acc.is_main_process:
        summary = {"steps": trainer.step, "final_loss": losses[-1] if losses else None, "model": str(path)}
        print(json.dumps(summary))
    return 0


def model_to_fine_tune(checkpoint: str, overrides: dict, text_cache: str | None = None):
    """The model of ``checkpoint`` with its trained weights, ``overrides`` applied to its config.

    An override that changes a tensor's shape or the set of tensors is an error naming them (the
    weights would otherwise be partly random).
    """
    from actionimages.model import build_model, load_model
    from actionimages.model.io import state_dict_mismatch
    from actionimages.train.checkpoint import resolve_model_dir

    model_dir = resolve_model_dir(checkpoint)[0]
    model = load_model(model_dir, text_cache=text_cache)
    print(f"fine-tuning from {model_dir} (config {model.spec.name!r})", file=sys.stderr)
    if not overrides:
        return model
    if model.spec.text.kind == "umt5":
        raise ActionImagesError("--init-from a umT5 (Wan 2.2) model takes no --model.* overrides")
    tuned = build_model(config_with_overrides(model.spec, overrides))
    have = model.state_dict()
    missing, unexpected, reshaped = state_dict_mismatch(tuned.state_dict(), have)
    if missing or unexpected or reshaped:
        raise ActionImagesError(
            f"--model overrides {sorted(overrides)} change the architecture of {model_dir}: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}, reshaped {reshaped[:5]}"
        )
    tuned.load_state_dict(have)
    return tuned


def run_train_vae(args: argparse.Namespace) -> int:
    from actionimages.model import get_config
    from actionimages.train import VAETrainConfig, open_training_source, train_vae

    cfg = get_config(args.config)
    if cfg.latent.kind != "wan_vae":
        # Pixel-space configs have no learned autoencoder; succeed so pipelines need no special case.
        print(json.dumps({"vae": None, "note": f"config {args.config!r} has no learned autoencoder"}))
        return 0
    from actionimages.cli.config_args import dataclass_from_flags

    # 0 means whole clips / frames, as None does
    vcfg = dataclass_from_flags(
        VAETrainConfig, args, crop_frames=args.crop_frames or None, crop_size=args.crop_size or None
    )
    if args.resume:  # as train's --resume: nothing to resume is an error, not a silent fresh run
        from actionimages.train.checkpoint import resume_candidates

        if not resume_candidates(Path(args.out) / "checkpoints"):
            raise ActionImagesError(
                f"--resume: no checkpoint in {Path(args.out) / 'checkpoints'} to resume from "
                "(drop --resume to start a new run)"
            )
    source = open_training_source(args.data, cfg, args.stride, args.clips_per_episode, args.seed)
    path = train_vae(cfg, source, args.out, vcfg, resume=args.resume)
    print(json.dumps({"vae": str(path)}))
    return 0


if __name__ == "__main__":  # `accelerate launch -m actionimages.cli.train --config ...`
    from actionimages.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
