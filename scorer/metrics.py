"""Validating predictions and computing the score: pure functions, run by the trusted parent only.

Policy for odd values, decided once here:
- Predictions are N class ids (any int or float dtype; floats must be whole numbers) or an (N, 15)
  score array, of which the argmax is the prediction (ties go to the lowest class id, as np.argmax).
- Any NaN or ±inf anywhere fails the submission (NON_FINITE): a score with a NaN has no argmax that
  means anything, and silently treating it as wrong would hide a diverged model from the trainee.
- The loss (the course's old "Test loss") is reported only when every score row is a probability
  distribution (non-negative, sums to 1 within 1e-3); it is the course's cross-entropy
  ``-sum(t * log(y + 1e-7)) / N``, so figures stay comparable with the old harness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from scorer.classes import KATAKANA, NUM_CLASSES
from scorer.errors import ErrorCode, ScoringError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

PROBABILITY_TOLERANCE = 1e-3
CROSS_ENTROPY_DELTA = 1e-7


@dataclass(frozen=True)
class Predictions:
    ids: IntArray  # (N,) class ids in 0..14
    probabilities: FloatArray | None  # (N, 15) when the scores were probability distributions


@dataclass(frozen=True)
class ClassScore:
    class_id: int
    label: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None

    def to_json(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id,
            "label": self.label,
            "correct": self.correct,
            "total": self.total,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class Metrics:
    correct: int
    total: int
    per_class: list[ClassScore]
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    loss: float | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def macro_accuracy(self) -> float:
        """Mean of the per-class accuracies: the hidden set has 1,300 of ア–オ but 800 of カ–ソ."""
        present = [c.accuracy for c in self.per_class if c.accuracy is not None]
        return float(np.mean(present)) if present else 0.0


def validate_predictions(raw: npt.NDArray[Any], expected: int) -> Predictions:
    """Check what came out of the sandbox; raise ScoringError with the code the trainee can act on."""
    if raw.dtype.kind not in "biuf":
        raise ScoringError(ErrorCode.PREDICTION_SHAPE, {"got": f"dtype {raw.dtype}"})
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim not in (1, 2) or (raw.ndim == 2 and raw.shape[1] != NUM_CLASSES):
        raise ScoringError(ErrorCode.PREDICTION_SHAPE, {"got": f"shape {raw.shape}"})
    if raw.shape[0] != expected:
        raise ScoringError(ErrorCode.PREDICTION_COUNT, {"expected": expected, "got": raw.shape[0]})
    values = raw.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ScoringError(ErrorCode.NON_FINITE, {"count": int(bad.sum())})
    if raw.ndim == 2:
        ids = np.argmax(values, axis=1).astype(np.int64)
        sums = values.sum(axis=1)
        is_probability = bool((values >= 0).all() and np.allclose(sums, 1.0, atol=PROBABILITY_TOLERANCE))
        return Predictions(ids, values if is_probability else None)
    out_of_range = (values < 0) | (values > NUM_CLASSES - 1) | (values != np.round(values))
    if out_of_range.any():
        example = raw[np.argmax(out_of_range)]
        raise ScoringError(ErrorCode.CLASS_OUT_OF_RANGE, {"example": f"{example!r}".replace("np.", "")})
    return Predictions(values.astype(np.int64), None)


def labels_to_ids(labels: npt.NDArray[Any]) -> IntArray:
    """The hidden labels as class ids, whether stored one-hot (N, 15), as (N, 1) or as (N,)."""
    if labels.ndim == 2 and labels.shape[1] == NUM_CLASSES:
        ids: IntArray = np.argmax(labels, axis=1).astype(np.int64)
        return ids
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-hot (N, {NUM_CLASSES}) or ids (N,), not {labels.shape}")
    ids = labels.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= NUM_CLASSES):
        raise ValueError("label ids must be in 0..14")
    return ids


def cross_entropy(probabilities: FloatArray, true_ids: IntArray) -> float:
    picked = probabilities[np.arange(len(true_ids)), true_ids]
    return float(-np.sum(np.log(picked + CROSS_ENTROPY_DELTA)) / len(true_ids))


def compute_metrics(predictions: Predictions, true_ids: IntArray) -> Metrics:
    if len(predictions.ids) != len(true_ids):
        raise ValueError("predictions and labels differ in length")
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (true_ids, predictions.ids), 1)
    per_class = [ClassScore(k, KATAKANA[k], int(confusion[k, k]), int(confusion[k].sum())) for k in range(NUM_CLASSES)]
    loss = cross_entropy(predictions.probabilities, true_ids) if predictions.probabilities is not None else None
    return Metrics(
        correct=int(np.trace(confusion)),
        total=len(true_ids),
        per_class=per_class,
        confusion=confusion.tolist(),
        loss=loss,
    )
