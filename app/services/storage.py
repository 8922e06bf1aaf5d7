"""Where uploaded zips live: by content hash under ``settings.storage_dir``.

Identical uploads share one file; the submission row keeps the name the trainee gave it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


def key_for(sha256: str) -> str:
    return f"zips/{sha256[:2]}/{sha256}.zip"


def path_for(storage_dir: Path, key: str) -> Path:
    path = (storage_dir / key).resolve()
    if not path.is_relative_to(storage_dir.resolve()):
        raise ValueError(f"storage key escapes the storage folder: {key!r}")
    return path


def incoming_dir(storage_dir: Path) -> Path:
    """Uploads being received; on the same file system as the store, so finishing is a rename."""
    path = storage_dir / "incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _older_than(paths: Iterable[Path], cutoff: float) -> list[Path]:
    old = []
    for path in paths:
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                old.append(path)
        except OSError:  # removed meanwhile
            continue
    return old


def purge_stale_uploads(
    storage_dir: Path,
    *,
    referenced: Callable[[list[str]], set[str]],
    incoming_ttl_s: float,
    orphan_ttl_s: float,
    now: float | None = None,
) -> int:
    """Delete what no submission will ever read; returns how many files went.

    - ``incoming/*.part`` older than ``incoming_ttl_s``: uploads whose web process died mid-body
      (a living request removes its own part file however it ends);
    - stored zips older than ``orphan_ttl_s`` that no submission row names (``referenced`` says
      which of the given keys are still used): zips the pre-flight refused, or that were refused
      for the daily limit. They are kept a while so a trainee's retry reuses the stored file.
    """
    now = time.time() if now is None else now
    removed = 0
    incoming = storage_dir / "incoming"
    for path in _older_than(incoming.glob("*.part") if incoming.is_dir() else [], now - incoming_ttl_s):
        path.unlink(missing_ok=True)
        removed += 1
    zips = storage_dir / "zips"
    candidates = _older_than(zips.glob("*/*.zip") if zips.is_dir() else [], now - orphan_ttl_s)
    keys = {path.relative_to(storage_dir).as_posix(): path for path in candidates}
    return removed + _unlink_unreferenced(keys, referenced)


def discard(
    storage_dir: Path, keys: Iterable[str], referenced: Callable[[list[str]], set[str]], written_before: float
) -> int:
    """Delete these stored zips unless ``referenced`` names them or one was written at or after
    ``written_before`` (an upload of the same bytes since, whose row may not exist yet); returns how
    many went."""
    paths = {key: path_for(storage_dir, key) for key in keys}
    old = set(_older_than(paths.values(), written_before))
    return _unlink_unreferenced({key: path for key, path in paths.items() if path in old}, referenced)


def _unlink_unreferenced(paths: dict[str, Path], referenced: Callable[[list[str]], set[str]]) -> int:
    """Unlink the files of the keys ``referenced`` does not name, asking about 500 keys at a time
    (a bounded ``IN`` list, whatever the size of the store)."""
    removed = 0
    names = list(paths)
    for start in range(0, len(names), 500):
        batch = names[start : start + 500]
        used = referenced(batch)
        for key in batch:
            if key not in used:
                paths[key].unlink(missing_ok=True)
                removed += 1
    return removed


@dataclass
class ReceivedUpload:
    """A zip received (by ``app.web.upload_body``) or already in the store, with the form's other
    fields; it enters the store only in the transaction that records the row naming it."""

    fields: dict[str, str] = field(default_factory=dict)
    original_filename: str = ""
    sha256: str = ""
    size: int = 0
    storage_key: str = ""
    part: Path | None = None  # the received body, outside the store until kept
    destination: Path | None = None  # its place in the store (``storage_key`` under the storage folder)

    def keep(self) -> None:
        """Move the received file to its place in the store; nothing to do for an upload already
        there. Called inside the transaction that inserts the row naming ``storage_key``, so the
        zip is in the store exactly when something will read it (a failed commit leaves it to the
        store's purge). The file is then marked written now: a clean-up that spares zips stored
        since a moment (``storage.discard``) spares this one, whenever its bytes arrived."""
        if self.part is None:
            return
        assert self.destination is not None
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.part, self.destination)  # same content, same name: replacing an identical file is harmless
        os.utime(self.destination)
        self.part = None

    def discard(self) -> None:
        """Remove the received file unless it was kept (a refused upload leaves nothing behind)."""
        if self.part is not None:
            self.part.unlink(missing_ok=True)
            self.part = None
