"""Errors raised while finding, fetching or reading a dataset.

Every message names the file (or URL) and says what is wrong with it, because the usual cure
is for a person to delete, replace or move that one file.
"""

from __future__ import annotations


class DataError(Exception):
    """A dataset is missing, corrupt, truncated, of the wrong format or failed its checksum."""


class DownloadError(DataError):
    """A mirror could not be reached or the transfer broke off (typically: no network).

    Kept apart from other data errors so that ``mnist`` can fall back to ``mnist-sample`` when
    offline, while a checksum mismatch or a corrupt file still stops with an error.
    """
