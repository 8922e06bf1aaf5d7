"""The pre-flight's smoke sample and its accuracy: pure functions, run by the trusted parent only.

The smoke run shows a submission a handful of images before an upload is spent. When an admin has
imported the course's *public* training set, those images are the trainee's own training images
and their labels are public, so the parent can score the smoke run: a model that trained to ~97 %
but gets ~7 % here (chance is 1/15) almost surely preprocesses differently in ``predict`` than in
training (a missing ``/ 255``) or maps classes in another order. The labels still never enter the
sandbox: the parent keeps them and compares after the run has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from scorer.classes import IMAGE_SHAPE, NUM_CLASSES
from scorer.errors import Lang
from scorer.metrics import Predictions, labels_to_ids

SMOKE_PER_CLASS: Final[int] = 2
# Below this share of correct smoke images the model is "near chance" (chance is 1/15, about 7 %):
# a working model trained on these very images gets nearly all 30 right, a broken pipeline a few.
NEAR_CHANCE_BELOW: Final[float] = 0.30


class PublicSetRejected(ValueError):
    """The files are not the course's public training set in a usable form; the message says why."""


@dataclass(frozen=True)
class SmokeAccuracy:
    """How many of the labelled smoke images the submission got right."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def near_chance(self, threshold: float = NEAR_CHANCE_BELOW) -> bool:
        """True when the accuracy is below ``threshold`` (there must be images to judge by)."""
        return self.total > 0 and self.accuracy < threshold

    def to_json(self) -> dict[str, Any]:
        return {"correct": self.correct, "total": self.total, "accuracy": self.accuracy}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SmokeAccuracy | None:
        if not data:
            return None
        return cls(correct=int(data["correct"]), total=int(data["total"]))


def validate_public_set(images: npt.NDArray[Any], labels: npt.NDArray[Any]) -> list[int]:
    """Check the course's public training set; returns the number of images of each class.

    Images must be (N, 1, 28, 28) numbers, labels one-hot (N, 15) as the course distributes them,
    and every class needs at least :data:`SMOKE_PER_CLASS` images so the smoke sample is balanced.
    """
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise PublicSetRejected(f"images must be shaped (N, 1, 28, 28), not {images.shape}")
    if images.dtype.kind not in "biuf":
        raise PublicSetRejected(f"images must be numbers, not {images.dtype}")
    if labels.ndim != 2 or labels.shape[1] != NUM_CLASSES:
        raise PublicSetRejected(f"labels must be one-hot, shaped (N, {NUM_CLASSES}), not {labels.shape}")
    if not np.all((labels == 0) | (labels == 1)) or not np.all(labels.sum(axis=1) == 1):
        raise PublicSetRejected("labels must be one-hot: each row holds a single 1 and otherwise 0")
    if labels.shape[0] != images.shape[0]:
        raise PublicSetRejected(f"{labels.shape[0]} labels for {images.shape[0]} images: the counts must match")
    counts = [int(n) for n in np.bincount(labels_to_ids(labels), minlength=NUM_CLASSES)]
    short = [c for c, n in enumerate(counts) if n < SMOKE_PER_CLASS]
    if short:
        raise PublicSetRejected(f"classes {short} have fewer than {SMOKE_PER_CLASS} images each")
    return counts


def select_smoke_sample(
    images: npt.NDArray[Any], labels: npt.NDArray[Any], per_class: int = SMOKE_PER_CLASS
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """The first ``per_class`` images of each class, in class order, and their class ids.

    The first ones in file order, not random ones: the same zip gets the same verdict every time,
    and the cached verdict stays true.
    """
    ids = labels_to_ids(np.asarray(labels))
    picked = []
    for class_id in range(NUM_CLASSES):
        where = np.flatnonzero(ids == class_id)[:per_class]
        if len(where) < per_class:
            raise PublicSetRejected(f"class {class_id} has {len(where)} images; the smoke sample needs {per_class}")
        picked.append(where)
    index = np.concatenate(picked)
    return np.ascontiguousarray(images[index]), ids[index].astype(np.int64)


def smoke_accuracy(predictions: Predictions, true_ids: npt.NDArray[np.int64]) -> SmokeAccuracy:
    """Compare validated predictions with the smoke sample's labels."""
    if len(predictions.ids) != len(true_ids):
        raise ValueError(f"{len(predictions.ids)} predictions for {len(true_ids)} labels")
    return SmokeAccuracy(correct=int(np.sum(predictions.ids == true_ids)), total=len(true_ids))


_NEAR_CHANCE: Final[dict[Lang, str]] = {
    "ja": (
        "公開されている学習画像 {total} 枚のうち、正しく分類できたのは {correct} 枚だけでした"
        "（当てずっぽうでも約 7 %）。"
        "学習では高い正解率だったのなら、predict の中の前処理が学習のときと違う可能性が高いです。"
        "たとえば学習で makedataset() などで行っていた test_data / 255 を predict の中でもしているか、"
        "クラスの順番（0 ア, 1 イ, … 14 ソ）が学習のときと同じかを確かめてください。"
    ),
    "en": (
        "Only {correct} of {total} public training images were classified correctly (guessing gets about 7 %). "
        "If the model scored well in training, predict most likely preprocesses differently: check that it "
        "applies the same preprocessing as makedataset()/training did (e.g. test_data / 255) and that the "
        "class order (0 ア, 1 イ, ... 14 ソ) is the one it was trained with."
    ),
}


def near_chance_text(lang: Lang, smoke: SmokeAccuracy) -> str:
    """What a near-chance smoke accuracy probably means and what to check, in ``lang``."""
    return _NEAR_CHANCE[lang].format(correct=smoke.correct, total=smoke.total)
