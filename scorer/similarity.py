"""Evidence that two submissions share a model or code: pure functions, no database, no web.

Two models trained independently make *different* mistakes on a large test set; a copied model (even
re-zipped, renamed, slightly perturbed or briefly fine-tuned) makes the same ones. So the measure
is the **error agreement** of two prediction vectors: among the images both got wrong, the share
where they predicted the same wrong class. Accuracy alone says little (two good models agree on
almost everything they get right); the wrong answers are where the models' histories show.

Identical files are the other, cruder evidence: the same SHA-256 of the zip, of a weight file
inside it, or of ``submit_katakana`` once whitespace and comments are normalised away (for a
notebook: its code cells, as the scorer runs them).

Everything here is numpy-vectorised: comparing one new submission with 3,000 others on 14,500
images is a few tens of milliseconds, so a cohort is updated incrementally after each result.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scorer.classes import NUM_CLASSES

PredArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]

# Files that hold trained parameters in the course's world (pickle, NumPy, Keras/HDF5, joblib, torch).
WEIGHT_SUFFIXES = frozenset({".pkl", ".pickle", ".npy", ".npz", ".h5", ".hdf5", ".joblib", ".pt", ".pth"})
TEMPLATES = Path(__file__).parent / "templates"

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Predictions, stored compactly


def predictions_to_bytes(ids: npt.NDArray[Any]) -> bytes:
    """Class ids (0..14) as one byte each: 14,500 bytes for the hidden set."""
    array = np.asarray(ids)
    if array.ndim != 1 or (array.size and (array.min() < 0 or array.max() >= NUM_CLASSES)):
        raise ValueError("predictions must be a 1-D array of class ids 0..14")
    return array.astype(np.uint8).tobytes()


def predictions_from_bytes(data: bytes) -> PredArray:
    return np.frombuffer(data, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# Error agreement


@dataclass(frozen=True)
class Agreement:
    """How one submission's predictions compare with each of ``S`` others (arrays of length S)."""

    both_wrong: IntArray  # images both got wrong
    same_wrong: IntArray  # ... of which both predicted the same (wrong) class
    agree: IntArray  # images where both predicted the same class, right or wrong
    total: int  # images compared

    def error_agreement(self) -> npt.NDArray[np.float64]:
        """same_wrong / both_wrong; NaN where the two share no mistake at all."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.both_wrong > 0, self.same_wrong / np.maximum(self.both_wrong, 1), np.nan)


def compare(new: npt.NDArray[Any], others: npt.NDArray[Any], labels: npt.NDArray[Any]) -> Agreement:
    """Compare one prediction vector (N,) with a stack of others (S, N) on the same labelled images.

    Only the columns where ``new`` is wrong can count towards ``both_wrong``, so the expensive part
    runs on those few (a good model errs on a few percent); the overall agreement is one full pass.
    """
    new = np.asarray(new)
    others = np.asarray(others)
    labels = np.asarray(labels)
    if others.ndim != 2 or new.ndim != 1 or labels.shape != new.shape or others.shape[1] != new.shape[0]:
        raise ValueError(f"shapes do not match: new {new.shape}, others {others.shape}, labels {labels.shape}")
    if others.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Agreement(empty, empty, empty, int(new.shape[0]))
    new8 = new.astype(np.uint8, copy=False)
    others8 = np.ascontiguousarray(others, dtype=np.uint8)
    wrong = np.flatnonzero(new8 != labels.astype(np.uint8, copy=False))
    sub = np.take(others8, wrong, axis=1)  # (S, k): only where new is wrong
    # count_nonzero on booleans is several times faster than sum(), which widens every element first.
    both_wrong = np.count_nonzero(sub != labels[wrong].astype(np.uint8), axis=1).astype(np.int64)
    same_wrong = np.count_nonzero(sub == new8[wrong], axis=1).astype(np.int64)  # new is wrong there: "same" is wrong
    agree = np.count_nonzero(others8 == new8, axis=1).astype(np.int64)
    return Agreement(both_wrong, same_wrong, agree, int(new.shape[0]))


def strongest_per_group(groups: npt.NDArray[Any], agreement: Agreement, min_both_wrong: int) -> dict[int, int]:
    """For each group (trainee), the index of its submission that agrees most in its errors.

    Ranked by error agreement, then by the number of shared mistakes (more evidence wins a tie).
    A pair with fewer than ``min_both_wrong`` shared mistakes ranks below every pair with enough:
    two near-perfect models sharing 3 mistakes, 3 of them alike, prove nothing.
    """
    groups = np.asarray(groups)
    if groups.size == 0:
        return {}
    rate = np.nan_to_num(agreement.error_agreement(), nan=-1.0)
    rate = np.where(agreement.both_wrong >= min_both_wrong, rate, rate - 3.0)
    order = np.lexsort((agreement.both_wrong, rate, groups))  # last key sorts first: by group, then rate
    sorted_groups = groups[order]
    last_of_group = np.flatnonzero(np.r_[sorted_groups[1:] != sorted_groups[:-1], True])
    return {int(sorted_groups[i]): int(order[i]) for i in last_of_group}


# --------------------------------------------------------------------------------------------------
# Identical files


@dataclass(frozen=True)
class FileHash:
    kind: str  # "zip", "weights" or "code"
    name: str  # the path inside the zip ("" for the zip itself)
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "sha256": self.sha256}


def _sha256_path(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def normalised_code(source: bytes | str) -> str:
    """Python source without comments, blank lines and layout: the tokens, one space apart.

    Re-indenting, re-wrapping or re-commenting a copied file changes nothing here; renaming a
    variable does (that is a code-similarity tool's job, not a hash's). Source that does not
    tokenise falls back to its non-blank lines with runs of whitespace collapsed.
    """
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    text = text.lstrip("\ufeff")
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
    try:
        tokens = [tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline) if tok.type not in skip]
    except (tokenize.TokenError, SyntaxError, ValueError):
        lines = (" ".join(line.split("#", 1)[0].split()) for line in text.splitlines())
        return "\n".join(line for line in lines if line)
    return " ".join(t for t in tokens if t)


def code_hash(source: bytes | str) -> str:
    return hashlib.sha256(normalised_code(source).encode("utf-8")).hexdigest()


@functools.cache
def template_code_hashes() -> frozenset[str]:
    """The downloadable templates' own code: every trainee starts from it, so sharing it means nothing."""
    from scorer.notebook import notebook_to_source

    hashes = set()
    for path in sorted(TEMPLATES.glob("submit_katakana.*")):
        try:
            raw = path.read_bytes()
            source = notebook_to_source(raw, path.name).source if path.suffix == ".ipynb" else raw
        except Exception as exc:  # a broken template must not break scoring; it is tested elsewhere
            log.warning("template %s not hashed: %s", path.name, exc)
            continue
        hashes.add(code_hash(source))
    return frozenset(hashes)


def file_hashes(zip_sha256: str, root: Path, code_source: bytes | str | None, entry_name: str) -> list[FileHash]:
    """The zip's digest, every weight file's under ``root`` (an extracted submission), and the code's.

    ``root`` is the intake's extraction, which holds regular files and folders only; links are not
    followed all the same. Empty files are left out (every empty file is identical to every other),
    and so is code identical to a downloadable template.
    """
    hashes = [FileHash("zip", "", zip_sha256)] if zip_sha256 else []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix.lower() not in WEIGHT_SUFFIXES or path.is_symlink() or not path.is_file():
                continue
            if path.stat().st_size == 0:
                continue
            hashes.append(FileHash("weights", path.relative_to(root).as_posix(), _sha256_path(path)))
    if code_source is not None and normalised_code(code_source):
        digest = code_hash(code_source)
        if digest not in template_code_hashes():
            hashes.append(FileHash("code", entry_name, digest))
    return hashes
