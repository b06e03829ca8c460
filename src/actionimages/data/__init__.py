"""Episodes, LeRobot-v3 datasets, paper-layout readers, mixtures and training samples."""

from actionimages.data.episode import Episode, calibration_from_json, calibration_to_json
from actionimages.data.lerobot import DatasetReader, DatasetWriter, LazyVideo
from actionimages.data.video import decode_frames, encode_video, probe_video

__all__ = [
    "DatasetReader",
    "DatasetWriter",
    "Episode",
    "LazyVideo",
    "calibration_from_json",
    "calibration_to_json",
    "decode_frames",
    "encode_video",
    "probe_video",
]
