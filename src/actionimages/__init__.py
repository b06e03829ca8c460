"""actionimages: robot actions as multiview heatmap videos, and a video generator as a robot policy.

Layout (each a subpackage): ``codec`` (actions <-> action images), ``sim`` (embedded MuJoCo
benchmark), ``data`` (episode datasets and training samples), ``model`` (world-action model),
``train``, ``policy`` (closed loop), ``eval`` and ``cli``.
"""

from actionimages.errors import ActionImagesError

__version__ = "0.1.0"
__all__ = ["ActionImagesError", "__version__"]
