"""The project's exception type.

Every error raised for bad input is an :class:`ActionImagesError`, which subclasses
``ValueError`` so that callers who already catch ``ValueError`` keep working.
"""


class ActionImagesError(ValueError):
    """Bad input to actionimages; the message names the problem."""


class DataError(ActionImagesError):
    """A dataset, episode or file on disk is malformed (the message names which)."""
