"""Episodes, LeRobot-v3 datasets, paper-layout readers, mixtures and training samples.

Main entry points:

- :class:`Episode`: one demonstration (frames, calibrated cameras, actions, instruction).
- :class:`DatasetWriter` / :class:`DatasetReader`: LeRobot v3 on disk, atomic per episode.
- :class:`RLBenchReader`, :class:`DroidReader`, :class:`BridgeReader`: the paper's layouts.
- :func:`open_source`: a dataset directory as an episode source; :class:`Mixture`: sources mixed by
  ratio across ranks.
- :class:`SampleBuilder`, :class:`ClipDataset`, :func:`collate`: training samples for the model.
- :class:`LatentCache`: VAE latents / text embeddings cached on disk, keyed by model + config.
"""

from actionimages.data.cache import LatentCache, hash_config, hash_state_dict
from actionimages.data.check import check_dataset, dataset_info
from actionimages.data.episode import Episode, calibration_from_json, calibration_to_json
from actionimages.data.lerobot import DatasetReader, DatasetWriter
from actionimages.data.mixture import Mixture, parse_mixture_spec
from actionimages.data.registry import SOURCES, detect_kind, open_source, register_source
from actionimages.data.sample import SampleBuilder, crop_resize_frames
from actionimages.data.sources import BridgeReader, DroidReader, RLBenchReader
from actionimages.data.torch_dataset import ClipDataset, collate
from actionimages.data.video import VideoFile, decode_frames, encode_video, open_video, probe_video

__all__ = [
    "BridgeReader",
    "ClipDataset",
    "DatasetReader",
    "DatasetWriter",
    "DroidReader",
    "Episode",
    "LatentCache",
    "Mixture",
    "SOURCES",
    "RLBenchReader",
    "SampleBuilder",
    "VideoFile",
    "calibration_from_json",
    "calibration_to_json",
    "check_dataset",
    "collate",
    "crop_resize_frames",
    "dataset_info",
    "decode_frames",
    "detect_kind",
    "encode_video",
    "hash_config",
    "hash_state_dict",
    "open_source",
    "open_video",
    "register_source",
    "parse_mixture_spec",
    "probe_video",
]
