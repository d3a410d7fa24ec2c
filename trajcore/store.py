"""The sweep store: one checksummed JSON file per run, written atomically, and a summary rebuilt from them.

Layout of a store directory::

    sweep.json          the sweep that filled it (experiment, base settings, grid)
    runs/<id>.json      one finished run: {"payload": {...}, "sha256": <hex of the canonical payload>}
    summary.csv         one row per run, rebuilt from runs/ (never the source of truth)
    failures.json       the runs that raised in the last pass (absent when none did)
    sweep.lock          while a sweep writes: its process id, host and start time

Every .json file is strict JSON under the package's one policy (``trajcore._json``): numpy values are
plain numbers and lists, and a non-finite number (a NaN metric, say) is written as ``null``.

A run file appears only complete: it is written to a temporary file in the same directory,
flushed and fsynced, then renamed over its final name (``os.replace`` is atomic on POSIX and
Windows), and the directory is fsynced. A reader therefore sees either no file or a whole one; a
file that fails its checksum (disk corruption, a hand edit) is reported as corrupt and recomputed.
Temporary files left by a killed writer are removed on the next open.

One writer at a time: :meth:`RunStore.lock` holds ``sweep.lock`` for the duration of a sweep. It is
an exclusive ``flock`` on that file (released by the kernel when the owner dies, however it dies)
holding the owner's pid, host and start time for the message a second sweep gets. A lock file whose
owner is gone is taken over when it names this host; one naming another host (a store on a shared
disk) is refused, since the owner's liveness cannot be checked from here, with the file to delete
once that sweep is known to be gone. Without ``fcntl`` (Windows) the lock is an exclusively created
file and one left by a killed sweep must be deleted by hand.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ._json import canonical_json, dumps, json_ready
from ._storage import TEMP_SUFFIX, atomic_write_text

# json_ready is the package JSON policy (trajcore._json), re-exported here where it was first public.
__all__ = ["RunStore", "StoreScan", "StoreError", "StoreLock", "json_ready", "load_summary"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

PathLike = Union[str, "os.PathLike[str]"]


class StoreError(RuntimeError):
    """A store directory that cannot be used (belongs to another experiment, not a store, ...)."""


def _checksum(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


@dataclass
class StoreScan:
    """What a store holds: ``complete`` id -> payload, ids of ``corrupt`` files, ``temporaries`` left over."""

    complete: dict[str, dict[str, Any]] = field(default_factory=dict)
    corrupt: list[str] = field(default_factory=list)
    temporaries: list[Path] = field(default_factory=list)


class RunStore:
    """A directory of run files (see the module docstring for the layout).

    Parameters
    ----------
    root : path
        The store directory; nothing is created until :meth:`create` or :meth:`write_run`.
    """

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.spec_path = self.root / "sweep.json"
        self.summary_path = self.root / "summary.csv"

    # -- the sweep record ------------------------------------------------------------------------
    def is_store(self) -> bool:
        return self.spec_path.is_file()

    def read_spec(self) -> dict[str, Any]:
        try:
            return json.loads(self.spec_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"{self.root}: not a sweep store (no sweep.json)") from None
        except (OSError, ValueError) as error:
            raise StoreError(f"{self.spec_path}: unreadable ({error})") from None

    def check_usable_for(self, experiment: str) -> None:
        """``StoreError`` unless this directory can hold runs of ``experiment`` (checked before any work)."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: exists and is not a directory")
        if self.is_store():
            previous = self.read_spec().get("experiment")
            if previous != experiment:
                raise StoreError(
                    f"{self.root}: holds runs of experiment {previous!r}, not {experiment!r}; choose another --out"
                )

    def create(self, spec: dict[str, Any]) -> None:
        """Create the directories and record ``spec``; refuse a store that belongs to another experiment."""
        self.check_usable_for(str(spec.get("experiment")))
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.spec_path, dumps(spec, indent=2, sort_keys=True) + "\n")

    # -- run files -------------------------------------------------------------------------------
    def run_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def write_run(self, payload: dict[str, Any]) -> Path:
        """Write one run atomically with the sha256 of its canonical payload; returns the file."""
        payload = json_ready(payload)
        record = {"payload": payload, "sha256": _checksum(payload)}
        path = self.run_path(payload["id"])
        atomic_write_text(path, canonical_json(record) + "\n")
        return path

    def read_run(self, path: Path) -> dict[str, Any]:
        """The payload of a run file; ``ValueError`` if it is not whole and intact."""
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or set(record) != {"payload", "sha256"}:
            raise ValueError("not a run record")
        payload = record["payload"]
        if not isinstance(payload, dict) or _checksum(payload) != record["sha256"]:
            raise ValueError("checksum mismatch")
        if payload.get("id") != path.stem:
            raise ValueError("run id does not match the file name")
        return payload

    def scan(self) -> StoreScan:
        """Read every run file, sorting them into complete and corrupt, and list leftover temporaries."""
        scan = StoreScan()
        if not self.runs_dir.is_dir():
            return scan
        for path in sorted(self.runs_dir.iterdir()):
            if path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX):
                scan.temporaries.append(path)
            elif path.suffix == ".json":
                try:
                    scan.complete[path.stem] = self.read_run(path)
                except (OSError, ValueError, UnicodeDecodeError):
                    scan.corrupt.append(path.stem)
        return scan

    def discard(self, scan: StoreScan) -> None:
        """Delete the corrupt run files and leftover temporaries that ``scan`` found."""
        for run_id in scan.corrupt:
            with contextlib.suppress(FileNotFoundError):
                self.run_path(run_id).unlink()
        for path in scan.temporaries:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- one writer at a time -------------------------------------------------------------------------
    def lock(self) -> StoreLock:
        """The store's lock (a context manager; :class:`StoreError` if another sweep holds it)."""
        return StoreLock(self.root)

    # -- the summary -----------------------------------------------------------------------------
    def summary_rows(self, payloads: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """One flat row per run: ``id``, the config fields, scalar metrics, ``check.<name>`` columns;
        ordered by the config values (numbers numerically), so the table reads like the grid."""
        keyed = []
        for payload in payloads:
            config = payload.get("config", {})
            result = payload.get("result", {})
            row: dict[str, Any] = {"id": payload["id"]}
            row.update(config)
            for name, value in result.get("metrics", {}).items():
                if value is None or isinstance(value, (bool, int, float, str)):
                    row[f"metric.{name}" if name in row else name] = value
            for name, passed in result.get("checks", {}).items():
                row[f"check.{name}"] = passed
            keyed.append((_sort_key(list(config.values())), payload["id"], row))
        keyed.sort(key=lambda item: (item[0], item[1]))
        return [row for _, _, row in keyed]

    def rebuild_summary(self, scan: StoreScan | None = None) -> list[dict[str, Any]]:
        """Rewrite ``summary.csv`` from the run files (atomically) and return its rows."""
        scan = self.scan() if scan is None else scan
        rows = self.summary_rows(scan.complete.values())
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.summary_path, buffer.getvalue())
        return rows


class StoreLock:
    """``sweep.lock`` of a store, held by one sweep at a time (see the module docstring).

    ``acquire`` creates the store directory if needed and raises :class:`StoreError` naming the
    owner (pid, host, start) when another sweep holds the store; ``release`` removes the file.
    """

    NAME = "sweep.lock"

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        self.path = self.root / self.NAME
        self._fd: int | None = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _owner_text(self, owner: dict[str, Any] | None) -> str:
        if not owner:
            return "owner unknown"
        return f"pid {owner.get('pid')} on {owner.get('host')}, since {owner.get('started')}"

    def _busy(self, owner: dict[str, Any] | None) -> StoreError:
        return StoreError(
            f"{self.root}: another sweep is writing to this store ({self._owner_text(owner)}); "
            "wait for it to finish, or use another --out"
        )

    def _foreign(self, owner: dict[str, Any]) -> StoreError:
        return StoreError(
            f"{self.root}: locked by a sweep on host {owner.get('host')} ({self._owner_text(owner)}); "
            f"if that sweep is no longer running, delete {self.path}"
        )

    @staticmethod
    def _read_owner(fd: int) -> dict[str, Any] | None:
        try:
            owner = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def _record(self) -> bytes:
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return (dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}) + "\n").encode()

    def acquire(self) -> None:
        if self._fd is not None:
            raise StoreError(f"{self.root}: this sweep already holds the store's lock")
        self.root.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            self._acquire_exclusive_file()
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                # a writer fills the file right after taking the lock: give it a moment
                owner = self._read_owner(fd)
                for _ in range(20):
                    if owner:
                        break
                    time.sleep(0.01)
                    owner = self._read_owner(fd)
                os.close(fd)
                raise self._busy(owner) from None
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is None or not os.path.samestat(os.fstat(fd), current):
                os.close(fd)  # released (unlinked) between our open and our flock: try the new file
                continue
            owner = self._read_owner(fd)
            if owner and owner.get("host") != socket.gethostname():
                os.close(fd)
                raise self._foreign(owner)
            # Free: no owner, or one on this host whose flock died with it (a killed sweep).
            record = self._record()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
            os.fsync(fd)
            self._fd = fd
            return

    def _acquire_exclusive_file(self) -> None:  # pragma: no cover - Windows
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            with open(self.path, "rb") as handle:
                try:
                    owner = json.loads(handle.read().decode("utf-8"))
                except ValueError:
                    owner = None
            owner = owner if isinstance(owner, dict) else None
            if owner and owner.get("host") != socket.gethostname():
                raise self._foreign(owner) from None
            raise StoreError(
                f"{self.root}: another sweep is writing to this store ({self._owner_text(owner)}); "
                f"if it is no longer running, delete {self.path}"
            ) from None
        os.write(fd, self._record())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # unlink while still holding the flock, then let go: a waiter that opened the old file
        # notices it is gone (acquire compares the inode) and retries on a fresh one
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _sort_key(values: list[Any]) -> tuple[Any, ...]:
    key: list[Any] = []
    for value in values:
        if isinstance(value, list):
            key.append((2, _sort_key(value)))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            key.append((0, float(value)))
        else:
            key.append((1, str(value)))
    return tuple(key)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if value is None:
        return ""
    return value


def load_summary(root: PathLike) -> Any:
    """The summary of a store as a pandas DataFrame (list of row dicts when pandas is not installed),
    rebuilt from the run files."""
    rows = RunStore(root).rebuild_summary()
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)
