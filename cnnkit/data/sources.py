"""Where a dataset's files are looked for, and how missing ones are downloaded safely.

Search order: the folder the caller names (``data_dir``, the CLI's ``--data-dir``), cnnkit's
user cache, a copy installed by the system's package manager, and only then the official
mirror.  A download lands in a temporary file next to its destination and is renamed into
place only after its checksum matches, so an interrupted or tampered transfer is never used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from .catalog import Remote
from .errors import DataError, DownloadError

# Copies installed by Debian packages, and the package that installs each.
SYSTEM_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
SYSTEM_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}

# Seconds a mirror may stay silent before it counts as unreachable: offline, fail fast.
DOWNLOAD_TIMEOUT = 15.0
# The largest official file, CIFAR-10's archive, is 163 MiB: a mirror sending more is stopped
# there rather than filling the disk before the checksum can fail.
MAX_DOWNLOAD = 256 << 20
_CHUNK = 1 << 20

# on_progress(filename, bytes so far, total bytes or None when the server does not say)
Progress = Callable[[str, int, "int | None"], None]


def cache_root() -> Path:
    """``$CNNKIT_DATA_DIR``, else ``$XDG_CACHE_HOME/cnnkit``, else ``~/.cache/cnnkit``."""
    own = os.environ.get("CNNKIT_DATA_DIR")
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "cnnkit"


def cache_dir(name: str) -> Path:
    """The cache folder of one dataset."""
    return cache_root() / name


def search_folders(name: str, data_dir: str | os.PathLike | None) -> list[tuple[Path, str]]:
    """The folders to look in, best first, each with a few words on where it comes from."""
    folders = []
    if data_dir is not None:
        given = Path(data_dir).expanduser()
        try:
            is_folder = given.is_dir()
        except OSError as e:
            raise DataError(f"data directory {given}: cannot look at it: {e.strerror or e}") from e
        if not is_folder:
            raise DataError(f"data directory {given} does not exist or is not a folder")
        folders += [(given, "data directory"), (given / name, "data directory")]
    folders.append((cache_dir(name), "cnnkit cache"))
    if name in SYSTEM_DIRS:
        folders.append((SYSTEM_DIRS[name], f"installed by {SYSTEM_PACKAGES[name]}"))
    return folders


def download(remotes: Sequence[Remote], folder: Path, on_progress: Progress | None = None) -> None:
    """Fetch every file into ``folder``; stops at the first failure."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{folder}: cannot create the dataset folder: {e.strerror or e}") from e
    for remote in remotes:
        fetch(remote, folder / remote.filename, on_progress)


def fetch(remote: Remote, dest: Path, on_progress: Progress | None = None) -> None:
    """Download one file to ``dest``, verified against its checksum before it appears there;
    ``on_progress`` hears of the start (0 bytes), every MiB, and of the end with the total
    (also when the server did not announce one)."""
    try:
        fd, part_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DataError(f"{dest.parent}: cannot write a download there: {e.strerror or e}") from e
    part = Path(part_name)
    try:
        digest = hashlib.new(remote.algorithm)
        done, total = 0, None
        with os.fdopen(fd, "wb") as out:
            for chunk, total in _chunks(remote.url):
                done += len(chunk)
                if max(done, total or 0) > MAX_DOWNLOAD:
                    raise DataError(f"{remote.url}: more than {MAX_DOWNLOAD:,} bytes, larger than "
                                    "any official file; the download was deleted and not used")
                digest.update(chunk)
                out.write(chunk)
                if on_progress is not None:
                    on_progress(remote.filename, done, total)
        if on_progress is not None and total != done:  # no or a wrong announced size
            on_progress(remote.filename, done, done)
        if digest.hexdigest() != remote.digest.lower():
            raise DataError(
                f"{remote.url}: checksum mismatch: {remote.algorithm} {digest.hexdigest()}, "
                f"expected {remote.digest}; the download was deleted and not used"
            )
        os.replace(part, dest)
    except BaseException as e:
        part.unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk, or a folder where the file should go
            raise DataError(f"{dest}: cannot save the download: {e.strerror or e}") from e
        raise


def _chunks(url: str) -> Iterator[tuple[bytes, int | None]]:
    """The response body in pieces, each with the announced total size (an empty piece
    first); any network failure becomes a DownloadError."""
    try:
        with urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            yield b"", total
            while chunk := response.read(_CHUNK):
                yield chunk, total
    except (OSError, HTTPException) as e:  # URLError, HTTPError and timeouts are OSErrors
        reason = e.reason if isinstance(e, URLError) and not isinstance(e, HTTPError) else e
        raise DownloadError(f"could not download {url}: {reason}") from e
