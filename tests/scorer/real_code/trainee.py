"""Assembling trainee-style submissions: their own ``common/`` package, a model pickled by NumPy 1.x,
an entry (.py or .ipynb), zipped the way Windows Explorer or macOS Finder zips a folder."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from tests.scorer.real_code.model import numpy1_pickle, train
from tests.scorer.zips.corpus import Member, write_zip

HERE = Path(__file__).resolve().parent
COMMON = HERE / "common"
MODEL_FILE = "katakana_model.pickle"
ZipStyle = Literal["windows", "macos", "plain"]


def common_files(leave_out: Sequence[str] = ()) -> dict[str, bytes]:
    """The trainee's own package ``common/`` (``leave_out``: file names not to include)."""
    return {f"common/{p.name}": p.read_bytes() for p in sorted(COMMON.glob("*.py")) if p.name not in leave_out}


def notebook(cells: Sequence[tuple[str, str]]) -> bytes:
    """A version-4 notebook of (cell type, source) pairs, as Jupyter saves it."""
    nb = {
        "cells": [
            {"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True)}
            | ({"execution_count": None, "outputs": []} if kind == "code" else {})
            for kind, text in cells
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, ensure_ascii=False, indent=1).encode("utf-8")


def model_bytes(images: np.ndarray, ids: np.ndarray) -> bytes:
    """The trained batch-norm model's parameters, pickled as NumPy 1.x wrote them."""
    return numpy1_pickle(train(images, ids))


def zip_folder(path: Path, folder: str, files: dict[str, bytes], style: ZipStyle) -> Path:
    """``files`` under ``folder/``, zipped as ``style`` would: Windows writes CP932 names without
    the UTF-8 flag; Finder writes NFD UTF-8 names without the flag and adds __MACOSX/ and ._ files."""
    members: list[Member] = []
    if style == "windows":
        members.append(Member(f"{folder}/".encode("cp932")))
        members += [Member(f"{folder}/{name}".encode("cp932"), data) for name, data in files.items()]
    elif style == "macos":
        nfd = lambda s: unicodedata.normalize("NFD", s).encode("utf-8")  # noqa: E731
        members.append(Member(nfd(f"{folder}/")))
        for name, data in files.items():
            members.append(Member(nfd(f"{folder}/{name}"), data))
            members.append(Member(nfd(f"__MACOSX/{folder}/._{Path(name).name}"), b"\x00\x05\x16\x07junk"))
        members.append(Member(nfd(f"{folder}/.DS_Store"), b"junk"))
    else:
        members += [Member(f"{folder}/{name}", data) for name, data in files.items()]
    return write_zip(path, members)
