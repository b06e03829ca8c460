"""Readers for the paper's data layouts, each yielding :class:`~actionimages.data.Episode`."""

from actionimages.data.sources.bridge import BridgeReader, estimated_bridge_camera
from actionimages.data.sources.droid import DroidReader
from actionimages.data.sources.rlbench import RLBenchReader
from actionimages.data.sources.robot import RobotReader

__all__ = ["BridgeReader", "DroidReader", "RLBenchReader", "RobotReader", "estimated_bridge_camera"]
