"""Where uploaded zips live: by content hash under ``settings.storage_dir``.

Identical uploads share one file; the submission row keeps the name the trainee gave it.
"""

from __future__ import annotations

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
