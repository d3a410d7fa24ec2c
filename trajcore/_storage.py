"""Files that are never half-written, and ``.npz`` records of arrays plus JSON metadata.

Every writer goes through :func:`atomic_write`: the bytes go to a temporary file in the target's
folder, are flushed and fsynced, the file is renamed over the target (atomic on POSIX and Windows)
and the folder is fsynced. A reader sees the old file or the whole new one; an interrupted write
leaves no partial file behind. Temporary files are named ``.<name>.<pid>.<random>.tmp``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._json import dumps

__all__ = ["TEMP_SUFFIX", "atomic_write", "atomic_write_text", "save_record", "load_record"]

TEMP_SUFFIX = ".tmp"

PathLike = str | os.PathLike


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on every platform.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(handle)`` on a temporary file and move it over ``path`` once complete."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_directory(target.absolute().parent)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def save_record(path: PathLike, arrays: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Write ``arrays`` (None values skipped) and ``metadata`` as one ``.npz`` file, atomically.

    The metadata is stored as strict JSON under the package policy (``trajcore._json``): numpy
    values and tuples come back as numbers and lists, a non-finite float as None.
    """
    payload = {name: value for name, value in arrays.items() if value is not None}
    payload["metadata_json"] = np.array(dumps(metadata, sort_keys=True))
    atomic_write(path, lambda handle: np.savez(handle, **payload))


def load_record(
    path: PathLike, names: Iterable[str], required: Iterable[str], kind: str
) -> tuple[dict[str, np.ndarray | None], dict[str, Any]]:
    """Read a file written by :func:`save_record`: ``(arrays by name (None if absent), metadata)``.

    Never unpickles. A file that is not such a record (junk, truncated, another ``.npz``, a missing
    ``required`` array) raises ``ValueError`` naming the path and ``kind``; a missing file raises
    ``FileNotFoundError``.
    """
    path = os.fspath(path)
    not_ours = f"path: {path!r} is not a {kind}"
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile, OSError) as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        # numpy reads any bytes that are not .npy/.npz as a pickle and blames allow_pickle: not
        # something to pass on to someone who asked for a trajectory
        reason = "not an .npz archive" if "pickle" in str(err) else str(err)
        raise ValueError(f"{not_ours} ({reason})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{not_ours} (a single .npy array)")
    with data:
        missing = sorted({*required, "metadata_json"} - set(data.files))
        if missing:
            raise ValueError(f"{not_ours} (missing {', '.join(missing)})")
        arrays = {name: (data[name] if name in data.files else None) for name in names}
        try:
            metadata = json.loads(str(data["metadata_json"]))
        except json.JSONDecodeError as err:
            raise ValueError(f"{not_ours} (metadata: {err})") from None
    return arrays, metadata
