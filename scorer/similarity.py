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
import math
import os
import tokenize
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from scorer.classes import NUM_CLASSES

PredArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Files that hold trained parameters in the course's world (pickle, NumPy, Keras/HDF5, joblib, torch).
WEIGHT_SUFFIXES = frozenset({".pkl", ".pickle", ".npy", ".npz", ".h5", ".hdf5", ".joblib", ".pt", ".pth"})
TEMPLATES = Path(__file__).parent / "templates"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"  # beside the package in the repository and image

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


# --------------------------------------------------------------------------------------------------
# The copy index: identical wrong answers against what independence predicts


@dataclass(frozen=True)
class Prior:
    """What is assumed before a cohort's own answers are counted; fitted on independently trained
    models of the course-format synthetic set (``bench/similarity_baseline.py --fit-prior``).

    Per image, the chance of a wrong answer is Beta(``wrong``, ``right``) and a wrong answer's class a
    Dirichlet with ``spread`` shared evenly by the 14 wrong classes: pseudo-answers added to the
    cohort's real ones. ``center`` and ``scale`` are where the lift of independent pairs lies and how
    far it strays (see ``CopyNull``); they count as ``pairs`` pairs of the cohort's own.
    """

    wrong: float
    right: float
    spread: float
    center: float
    scale: float
    pairs: int


# bench/similarity_baseline.py --fit-prior on the twelve-trainee cohorts gave MLP (wrong 0.033, right
# 0.63, spread 0.24, centre 0.16, scale 0.41) and CNN (0.040, 1.13, 0.32, 0.04, 0.36): of each value
# the one that expects more matches or a wider null, the scale rounded up, for cohorts too small to say.
PRIOR = Prior(wrong=0.04, right=0.63, spread=0.24, center=0.16, scale=0.45, pairs=45)
# Below this many trainees (15 pairs), the copy index rests mostly on the prior and often misses a
# copy (bench/similarity_baseline.py, small cohorts); the page says so. It never flags more there.
SMALL_COHORT = 6
FALSE_ALARM_RATE = 0.001  # per pair of trainees under independence
LIFT_BOUND = 12.0  # a lift is capped here: identical predictions reach it
MIN_SCALE = 0.1
MIN_REFERENCE_ACCURACY = 0.5
SHORTLIST = 2  # submissions per other trainee the copy index is computed for (see compare_strongest)
_NORMAL = NormalDist()


def z_needed(compared_pairs: int, false_alarm_rate: float = FALSE_ALARM_RATE) -> float:
    """The z a pair's strongest pair of submissions must reach: the rate is shared out over every
    pair of submissions that was compared (Bonferroni), so that taking the strongest of many still
    flags independent trainees at most at ``false_alarm_rate`` (3.09 for one pair of submissions)."""
    return -_NORMAL.inv_cdf(false_alarm_rate / max(1, compared_pairs))


@dataclass(frozen=True)
class CopyNull:
    """Where the lifts of a cohort's independent pairs lie: their centre and spread.

    Independent models are not alike in one way only: trainees who train the same way (the same
    architecture, no augmentation) share more mistakes than the per-image answer distribution says,
    by a lift that varies from pair to pair far more than chance on 14,500 images would. So centre and
    spread are measured on the cohort itself, as Efron's empirical null (2004): the median of all its
    pairs' lifts and their median absolute deviation (copies are few and do not move them), less the
    part that is each lift's own sampling error, shrunk towards the prior's as if the prior were
    ``Prior.pairs`` more pairs.
    """

    center: float
    scale: float
    pairs: int  # the cohort's own pairs it was measured on

    @classmethod
    def of(cls, lifts: npt.ArrayLike, errors: npt.ArrayLike, prior: Prior = PRIOR) -> CopyNull:
        values, se = np.asarray(lifts, dtype=np.float64), np.asarray(errors, dtype=np.float64)
        keep = np.isfinite(values) & np.isfinite(se)
        values, se = values[keep], se[keep]
        n = len(values)
        if n == 0:
            return cls(prior.center, prior.scale, 0)
        median = float(np.median(values))
        # The spread above the centre: that is the side copies would be on, and below it lie pairs
        # that differ by design (augmented against not), which would widen the spread for nothing.
        above = values[values > median] - median
        mad = 1.4826 * float(np.median(above)) if len(above) else 0.0
        spread2 = max(mad**2 - float(np.median(se**2)), MIN_SCALE**2)
        weight = n / (n + prior.pairs)
        center = weight * median + (1 - weight) * prior.center
        return cls(center, math.sqrt(weight * spread2 + (1 - weight) * prior.scale**2), n)

    def z(self, lift: npt.ArrayLike, lift_se: npt.ArrayLike) -> FloatArray:
        """The copy index: how many spreads a pair's lift lies above the centre, its own sampling
        error counted in (a pair that shares few mistakes has a lift that says less)."""
        se = np.asarray(lift_se, dtype=np.float64)
        return np.asarray((np.asarray(lift, dtype=np.float64) - self.center) / np.sqrt(self.scale**2 + se**2))


@dataclass(frozen=True)
class Comparison:
    """One submission against chosen rows of a :class:`Reference` (arrays of the rows' length)."""

    rows: IntArray
    agreement: Agreement  # the counts behind error agreement, kept for continuity
    expected: npt.NDArray[np.float64]  # identical wrong answers expected under independence
    lift: npt.NDArray[np.float64]  # log-odds shift of a match beyond independence (0: independent)
    lift_se: npt.NDArray[np.float64]  # its standard error (large when the pair shares few mistakes)
    same_wrong_easy: IntArray  # identical wrong answers on images most of the other trainees get right
    reference_trainees: IntArray  # trainees whose answers the expectations use (the pair left out)


def _logit(p: FloatArray) -> FloatArray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.asarray(np.log(p / (1.0 - p)))


_BIN = 0.25  # width of the log-odds bins the lift is fitted on (a match's log-odds spans about -16..6)
_LOW, _BINS = -16.0, 88


def _solve_shift(histograms: FloatArray, logits: FloatArray, target: FloatArray, bound: float) -> FloatArray:
    """Per row, the shift θ with sum_v h[v] σ(logit[v] + θ) = target (Newton, steps bounded)."""
    n = histograms.sum(axis=1)
    share = np.clip(target / np.maximum(n, 1), 0.5 / np.maximum(n, 1), 1 - 0.5 / np.maximum(n, 1))
    base = (histograms * _sigmoid(logits)).sum(axis=1) / np.maximum(n, 1)
    theta = np.clip(_logit(share) - _logit(np.clip(base, 1e-9, 1 - 1e-9)), -bound, bound)
    for _ in range(60):
        s = _sigmoid(logits + theta[:, None])
        f = (histograms * s).sum(axis=1) - target
        slope = (histograms * s * (1 - s)).sum(axis=1)
        step = np.clip(f / np.maximum(slope, 1e-12), -2.0, 2.0)
        theta = np.clip(theta - step, -bound, bound)
        if np.all(np.abs(step) < 1e-6):
            break
    return theta


def _fit_lift(logits: FloatArray, group: IntArray, groups: int, observed: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The lift λ of each group (a pair of submissions) and its standard error.

    ``logits`` are the log-odds of each target image being matched under independence; λ is the one
    shift of all of them that makes the expected matches equal the ``observed`` ones (the maximum
    likelihood estimate), so λ = 0 is independence and a copy's λ is large. Fitted on a histogram of
    the log-odds (bins of a quarter), which is exact enough and keeps the cost per pair fixed.
    """
    bins = np.clip(np.round((logits - _LOW) * (1 / _BIN)), 0, _BINS - 1).astype(np.int64)  # exact: 1/4
    hist = np.bincount(group * _BINS + bins, minlength=groups * _BINS).reshape(groups, _BINS).astype(np.float64)
    centres = np.broadcast_to(_LOW + _BIN * np.arange(_BINS), hist.shape)
    lift = _solve_shift(hist, centres, observed, LIFT_BOUND)
    s = _sigmoid(centres + lift[:, None])
    information = (hist * s * (1 - s)).sum(axis=1)
    return lift, 1.0 / np.sqrt(np.maximum(information, 0.25))


def _sigmoid(x: FloatArray) -> FloatArray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Answers:
    """A cohort's kept predictions on one test set, with what every :class:`Reference` of the cohort
    starts from: each trainee's representative answers (their latest row right on at least
    ``MIN_REFERENCE_ACCURACY`` of the images) and, over those, the wrong answers per image and class.

    Kept up to date as results arrive (``add``): a new row is appended, and when it becomes its
    trainee's representative the counts lose the old representative's wrong answers and gain the new
    one's, a few thousand small integers, instead of being counted again over the whole cohort. A
    :class:`Reference` then leaves one trainee out of them by subtracting that trainee's alone.

    ``keys`` order each trainee's rows (the worker's are submission ids, so a trainee's latest result
    represents them whatever order results arrive in); ``groups`` name the rows' trainees.
    """

    def __init__(self, labels: npt.NDArray[Any]) -> None:
        self.labels = np.asarray(labels).astype(np.int64)
        if self.labels.ndim != 1:
            raise ValueError(f"labels must be 1-D, not {self.labels.shape}")
        self.labels8 = self.labels.astype(np.uint8)
        n = len(self.labels)
        self.size = 0  # rows
        self.trainees = 0
        self._stack = np.empty((0, n), dtype=np.uint8)
        self._keys = np.empty(0, dtype=np.int64)
        self._groups = np.empty(0, dtype=np.int64)
        self._group_index = np.empty(0, dtype=np.int64)
        self._wrong = np.empty(0, dtype=np.int64)  # wrong answers per row
        self._wrong_images: list[npt.NDArray[np.int32]] = []  # per row, where it is wrong
        self._wrong_classes: list[PredArray] = []  # ... and what it answered there
        self._slot: dict[int, int] = {}  # a trainee's group → their index among ``trainees``
        self._rep_answer = np.empty((0, n), dtype=np.uint8)  # a trainee without one answers the labels
        self._rep_wrong = np.empty((0, n), dtype=bool)
        self._rep_row = np.empty(0, dtype=np.int64)  # -1: no usable row
        self.counts = np.zeros(n * NUM_CLASSES, dtype=np.int64)  # representatives' wrong answers per image, class
        self.n_wrong = np.zeros(n, dtype=np.int64)  # representatives wrong per image
        self.pooled = np.zeros(NUM_CLASSES * NUM_CLASSES, dtype=np.int64)  # per (true class, answer)

    @classmethod
    def of(cls, labels: npt.NDArray[Any], stack: npt.NDArray[Any], groups: npt.NDArray[Any]) -> Answers:
        """Rows in order: each trainee's last usable row represents them."""
        answers = cls(labels)
        stack = np.asarray(stack)
        answers.add(stack, np.asarray(groups), np.arange(len(stack) if stack.ndim == 2 else 0))
        return answers

    @property
    def stack(self) -> PredArray:
        return self._stack[: self.size]

    @property
    def keys(self) -> IntArray:
        return self._keys[: self.size]

    @property
    def groups(self) -> IntArray:
        return self._groups[: self.size]

    @property
    def group_index(self) -> IntArray:
        return self._group_index[: self.size]

    @property
    def wrong_rows(self) -> IntArray:
        return self._wrong[: self.size]

    @property
    def rep_answer(self) -> PredArray:
        return self._rep_answer[: self.trainees]

    @property
    def rep_wrong(self) -> npt.NDArray[np.bool_]:
        return self._rep_wrong[: self.trainees]

    @property
    def has_rep(self) -> npt.NDArray[np.bool_]:
        return self._rep_row[: self.trainees] >= 0

    @property
    def rep_row(self) -> IntArray:
        return self._rep_row[: self.trainees]

    def slot_of(self, group: int) -> int | None:
        return self._slot.get(int(group))

    def wrong_answers(self, rows: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """Every wrong answer of ``rows``, row by row and by image: (index into ``rows``, image,
        class answered); kept per row when it was added, rather than found again in rows × images."""
        if len(rows) == 0:
            nothing = np.zeros(0, dtype=np.int64)
            return nothing, nothing, nothing
        images = [self._wrong_images[int(r)] for r in rows]
        at = np.repeat(np.arange(len(rows), dtype=np.int64), [len(i) for i in images])
        classes = np.concatenate([self._wrong_classes[int(r)] for r in rows]).astype(np.int64)
        return at, np.concatenate(images).astype(np.int64), classes

    def add(self, rows: npt.NDArray[Any], groups: npt.NDArray[Any], keys: npt.NDArray[Any]) -> None:
        """Append ``rows`` (K, N) of the trainees ``groups`` with the ordering ``keys``."""
        rows = np.ascontiguousarray(rows, dtype=np.uint8)
        n = len(self.labels)
        k = len(rows)
        if rows.ndim != 2 or rows.shape[1] != n or len(groups) != k or len(keys) != k:
            raise ValueError(f"shapes do not match: rows {rows.shape}, labels {self.labels.shape}")
        if k == 0:
            return
        first = self.size
        self._grow_rows(first + k)
        self._stack[first : first + k] = rows
        self._keys[first : first + k] = keys
        self._groups[first : first + k] = groups
        slots = np.array([self._slot_for(int(g)) for g in np.asarray(groups).tolist()], dtype=np.int64)
        self._group_index[first : first + k] = slots
        mistakes = rows != self.labels8
        wrong = np.count_nonzero(mistakes, axis=1)
        self._wrong[first : first + k] = wrong
        at, images = np.nonzero(mistakes)
        ends = np.cumsum(wrong)[:-1]
        self._wrong_images.extend(np.split(images.astype(np.int32), ends))
        self._wrong_classes.extend(np.split(rows[at, images], ends))
        self.size = first + k
        # Rows that take over as their trainee's representative: the latest usable one of each.
        chosen: dict[int, int] = {}
        for j in np.flatnonzero(wrong <= (1 - MIN_REFERENCE_ACCURACY) * n).tolist():
            slot, row = int(slots[j]), first + j
            current = chosen.get(slot, int(self._rep_row[slot]))
            if current < 0 or self._keys[row] >= self._keys[current]:
                chosen[slot] = row
        if not chosen:
            return
        changed = np.array(sorted(chosen), dtype=np.int64)
        previous = changed[self._rep_row[changed] >= 0]
        self._count(previous, -1)
        self._rep_row[changed] = [chosen[int(s)] for s in changed]
        self._rep_answer[changed] = self._stack[self._rep_row[changed]]
        self._rep_wrong[changed] = self._rep_answer[changed] != self.labels8
        self._count(changed, 1)

    def contributions(self, slots: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """What the representatives of ``slots`` add to ``n_wrong``, ``counts`` and ``pooled``."""
        n = len(self.labels)
        wrong = self._rep_wrong[slots]
        t_idx, i_idx = np.nonzero(wrong)
        answer = self._rep_answer[slots][t_idx, i_idx].astype(np.int64)
        return (
            np.count_nonzero(wrong, axis=0).astype(np.int64),
            np.bincount(i_idx * NUM_CLASSES + answer, minlength=n * NUM_CLASSES),
            np.bincount(self.labels[i_idx] * NUM_CLASSES + answer, minlength=NUM_CLASSES * NUM_CLASSES),
        )

    def _count(self, slots: IntArray, sign: int) -> None:
        if len(slots) == 0:
            return
        n_wrong, counts, pooled = self.contributions(slots)
        self.n_wrong += sign * n_wrong
        self.counts += sign * counts
        self.pooled += sign * pooled

    def _slot_for(self, group: int) -> int:
        slot = self._slot.get(group)
        if slot is None:
            slot = self._slot[group] = self.trainees
            if slot >= len(self._rep_row):
                self._grow_trainees(slot + 1)
            self._rep_answer[slot] = self.labels8
            self._rep_wrong[slot] = False
            self._rep_row[slot] = -1
            self.trainees += 1
        return slot

    def _grow_rows(self, needed: int) -> None:
        if needed <= len(self._stack):
            return
        # A quarter more at a time: a cohort's rows arrive one by one, and 1,000 rows are 14.5 MB.
        capacity = max(needed, len(self._stack) + len(self._stack) // 4, 16)
        stack = np.empty((capacity, len(self.labels)), dtype=np.uint8)
        stack[: self.size] = self.stack
        self._stack = stack
        for name in ("_keys", "_groups", "_group_index", "_wrong"):
            old = getattr(self, name)
            grown = np.zeros(capacity, dtype=np.int64)
            grown[: self.size] = old[: self.size]
            setattr(self, name, grown)

    def _grow_trainees(self, needed: int) -> None:
        capacity = max(needed, len(self._rep_row) + len(self._rep_row) // 4, 8)
        n = len(self.labels)
        answer, wrong = np.empty((capacity, n), dtype=np.uint8), np.zeros((capacity, n), dtype=bool)
        rep_row = np.full(capacity, -1, dtype=np.int64)
        answer[: self.trainees], wrong[: self.trainees] = self.rep_answer, self.rep_wrong
        rep_row[: self.trainees] = self._rep_row[: self.trainees]
        self._rep_answer, self._rep_wrong, self._rep_row = answer, wrong, rep_row


class Reference:
    """A cohort's answers on one test set, against which one submission's matches are judged.

    The copy index of a pair of submissions is Wollack's ω (1997) turned to this task: the images are
    the items, the 15 classes the options, and only identical *wrong* answers count (identical right
    answers are what any two good models share). For each image the rest of the cohort supplies the
    answer distribution (one submission per trainee, the pair's two trainees left out, the other
    submission of the pair counted in, plus ``Prior``'s pseudo-answers); each model's own error rate
    (a Rasch-type shift ``θ`` of every image's chance of a wrong answer) and its preference for some
    wrong classes (a factor per class, from its confusion matrix against the cohort's) make that
    distribution its own. Matching the source's wrong answers is then a sum of independent Bernoulli
    trials (van der Linden & Sotaridona, 2006): z compares the observed count with its mean, and
    identical wrong answers on images the cohort gets right, being improbable, weigh most. Each pair
    is judged both ways (either may be the source) and keeps the smaller z.

    ``Reference(labels, stack, groups)`` holds every comparable submission of the cohort except the
    new one's trainee, with ``groups`` naming each row's trainee; the last usable row of a trainee
    represents them in the answer distributions. ``Reference.leaving_out(answers, group)`` is the
    same from a cohort's :class:`Answers` kept up to date, the new one's trainee left out: their rows
    are neither compared nor counted.
    """

    def __init__(
        self, labels: npt.NDArray[Any], stack: npt.NDArray[Any], groups: npt.NDArray[Any], prior: Prior = PRIOR
    ) -> None:
        labels = np.asarray(labels)
        stack = np.asarray(stack)
        if stack.ndim != 2 or labels.ndim != 1 or stack.shape[1] != labels.shape[0] or len(groups) != len(stack):
            raise ValueError(f"shapes do not match: stack {stack.shape}, labels {labels.shape}")
        self._bind(Answers.of(labels, stack, groups), None, prior)

    @classmethod
    def leaving_out(cls, answers: Answers, group: int | None, prior: Prior = PRIOR) -> Reference:
        """The reference for a new submission of trainee ``group``: the rest of ``answers``."""
        reference = cls.__new__(cls)
        reference._bind(answers, None if group is None else answers.slot_of(group), prior)
        return reference

    def _bind(self, answers: Answers, left_out: int | None, prior: Prior) -> None:
        self.answers = answers
        self.prior = prior
        self.labels = answers.labels
        self.labels8 = answers.labels8
        self.stack = answers.stack
        self.groups = answers.groups
        self.group_index = answers.group_index
        self.n_wrong_rows = answers.wrong_rows
        self.left_out = left_out
        # Rows that can be compared: every row but the left-out trainee's.
        self.candidates = (
            np.arange(answers.size) if left_out is None else np.flatnonzero(answers.group_index != left_out)
        )
        self.trainees = answers.trainees - (left_out is not None)  # other trainees: each image's wrong counts
        self.in_reference = answers.has_rep.copy()
        self.rep_wrong = answers.rep_wrong  # (trainees of ``answers``, N): the left-out one's is never read
        self.rep_answer = answers.rep_answer
        n_wrong, counts, pooled = answers.n_wrong, answers.counts, answers.pooled
        if left_out is not None and self.in_reference[left_out]:
            own = answers.contributions(np.array([left_out]))
            n_wrong, counts, pooled = n_wrong - own[0], counts - own[1], pooled - own[2]
            self.in_reference[left_out] = False
        self.answerers = int(np.count_nonzero(self.in_reference))
        # Per other trainee: the answerers without them, with the source, with the prior's pseudo-answers.
        self._answerers_with_prior = self.answerers - self.in_reference + 1.0 + prior.wrong + prior.right
        self.n_wrong = n_wrong.astype(np.float64)  # (N,)
        self.counts = counts.reshape(len(self.labels), NUM_CLASSES).astype(np.float64)  # wrong answers per class
        # The cohort's pooled confusion between classes, for each model's class preferences.
        confusion = pooled.reshape(NUM_CLASSES, NUM_CLASSES).astype(np.float64) + 1.0 - np.eye(NUM_CLASSES)
        np.fill_diagonal(confusion, 0.0)
        self.confusion = confusion / confusion.sum(axis=1, keepdims=True)
        self._theta: dict[int, float] = {}  # row → θ, measured when first compared

    # -- each model's own tendencies ------------------------------------------------------------

    def _preference_of(self, observed: FloatArray, by_true: FloatArray) -> FloatArray:
        """How much more often than the cohort's confusions predict a model's wrong answers fall in
        each class, (1 + observed) / (1 + expected), from its wrong answers per class (``observed``)
        and per true class (``by_true``): a model that has collapsed onto one class makes that class
        its wrong answer everywhere, and two such models are not copies."""
        return np.asarray((1.0 + observed) / (1.0 + by_true @ self.confusion))

    def _preferences(self, answers: npt.NDArray[Any]) -> FloatArray:
        answers = np.asarray(answers).astype(np.int64)
        wrong = answers != self.labels
        observed = np.bincount(answers[wrong], minlength=NUM_CLASSES).astype(np.float64)
        by_true = np.bincount(self.labels[wrong], minlength=NUM_CLASSES).astype(np.float64)
        return np.asarray(self._preference_of(observed[None, :], by_true[None, :])[0], dtype=np.float64)

    def _logit_wrong(self, wrong_counts: npt.NDArray[Any], answerers: npt.NDArray[Any] | int) -> FloatArray:
        p = self.prior
        return _logit((wrong_counts + p.wrong) / (answerers + p.wrong + p.right))

    def _abilities(self, rows: IntArray) -> FloatArray:
        """θ of each of ``rows``, against the cohort without that row's trainee."""
        missing = [int(r) for r in rows if int(r) not in self._theta]
        if missing:
            t = self.trainees
            levels = np.arange(t + 1, dtype=np.float64)  # other trainees wrong on an image
            overall = np.bincount(self.n_wrong.astype(np.int64), minlength=t + 1).astype(np.float64)
            trainees = np.unique(self.group_index[missing])
            # Each trainee's own wrong answers taken out of the counts: an image their representative
            # got wrong moves down one level. (A compared row's trainee is never the left-out one.)
            reps = self.answers.rep_row[trainees]
            has = np.flatnonzero(reps >= 0)
            j, images, _ = self.answers.wrong_answers(reps[has])
            own = self.n_wrong[images].astype(np.int64)
            moved = np.bincount(has[j] * (t + 2) + own, minlength=len(trainees) * (t + 2)).reshape(-1, t + 2)
            hist = overall[None, :] - moved[:, : t + 1] + moved[:, 1:]
            others = self.answerers - self.in_reference[trainees].astype(np.float64)  # the reference without them
            logits = self._logit_wrong(levels[None, :], others[:, None])
            at = np.searchsorted(trainees, self.group_index[missing])
            theta = _solve_shift(hist[at], logits[at], self.n_wrong_rows[missing].astype(np.float64), 30.0)
            self._theta.update(zip(missing, theta.tolist(), strict=True))
        return np.array([self._theta[int(r)] for r in rows], dtype=np.float64)

    def ability(self, answers: npt.NDArray[Any]) -> float:
        """θ of a submission outside the stack, against the whole cohort."""
        t = self.trainees
        wrong = float(np.count_nonzero(np.asarray(answers) != self.labels))
        hist = np.bincount(self.n_wrong.astype(np.int64), minlength=t + 1).astype(np.float64)[None, :]
        logits = self._logit_wrong(np.arange(t + 1, dtype=np.float64), self.answerers)[None, :]
        return float(_solve_shift(hist, logits, np.array([wrong]), 30.0)[0])

    # -- the comparison ---------------------------------------------------------------------------

    def _odds_and_counts(
        self, images: IntArray, answer: IntArray, trainee: IntArray
    ) -> tuple[FloatArray, FloatArray, IntArray, npt.NDArray[np.bool_]]:
        """For each target (an image the source got wrong, with its answer), what the cohort without
        ``trainee`` plus the source says, whoever the copier: the odds of a wrong answer there for an
        average model, the count of the source's answer among them with its pseudo-count, and the
        left-out trainee's wrong answer there (``rep_wrong``: whether they had one).

        The source counts as one more answerer; the other trainee's representative is taken out."""
        p = self.prior
        at = trainee * len(self.labels) + images  # flat indices: much quicker than pairs of index arrays
        rep_wrong = self.rep_wrong.ravel()[at]
        rep_answer = self.rep_answer.ravel()[at]
        m_wrong = self.n_wrong[images] - rep_wrong + 1.0
        q = (m_wrong + p.wrong) / self._answerers_with_prior[trainee]
        counted = self.counts.ravel()[images * NUM_CLASSES + answer]
        answer_count = counted - (rep_answer == answer) + 1.0 + p.spread / (NUM_CLASSES - 1)
        return q / (1.0 - q), answer_count, rep_answer, rep_wrong

    def compare_strongest(self, new: npt.NDArray[Any], per_trainee: int = SHORTLIST) -> Comparison:
        """The copy index against each other trainee's ``per_trainee`` submissions that share the
        largest part of their mistakes with the new one (identical wrong answers over the larger of
        the two's mistakes, one quick pass over every row): where a pair's strongest evidence lies,
        at a fraction of comparing every row. Ties go to the earlier row (by key)."""
        new8 = np.asarray(new).astype(np.uint8)
        rows = self.candidates
        if len(rows) == 0:
            return self.compare(new8)
        wrong = np.flatnonzero(new8 != self.labels8)
        # Only the shares are needed here: identical answers where the new one is wrong (count_nonzero
        # on booleans, several times quicker than sum()), on the candidates' columns alone.
        same = np.count_nonzero(np.take(self.stack, wrong, axis=1)[rows] == new8[wrong], axis=1)
        share = same / np.maximum(np.maximum(self.n_wrong_rows[rows], len(wrong)), 1)
        keys, groups = self.answers.keys[rows], self.group_index[rows]
        order = np.lexsort((keys, -share, groups))  # by trainee, the largest share first
        sorted_groups = groups[order]
        first = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
        chosen = order[rank < per_trainee]
        return self.compare(new8, rows[chosen[np.argsort(keys[chosen], kind="stable")]])

    def compare(self, new: npt.NDArray[Any], rows: npt.NDArray[Any] | None = None) -> Comparison:
        """The new submission (of a trainee not in the stack, or the left-out one) against ``rows``
        (default: every candidate)."""
        new = np.asarray(new).astype(np.int64)
        if new.shape != self.labels.shape:
            raise ValueError(f"shapes do not match: new {new.shape}, labels {self.labels.shape}")
        chosen = self.candidates if rows is None else np.asarray(rows, dtype=np.int64)
        targets = np.flatnonzero(new != self.labels)  # the new one's wrong answers
        k = len(targets)
        columns = self.stack[np.ix_(chosen, targets)]  # the chosen rows where the new one is wrong
        both_wrong = np.count_nonzero(columns != self.labels8[targets], axis=1).astype(np.int64)
        same = columns == new[targets]
        same_wrong = np.count_nonzero(same, axis=1).astype(np.int64)
        # Identical answers: wherever both are right, and where both are wrong alike.
        n_images = len(self.labels)
        agree = n_images - (self.n_wrong_rows[chosen] + k - both_wrong) + same_wrong
        agreement = Agreement(both_wrong, same_wrong, agree.astype(np.int64), n_images)
        if len(chosen) == 0:
            empty = np.zeros(0)
            nothing = np.zeros(0, dtype=np.int64)
            return Comparison(chosen, agreement, empty, empty, empty, nothing, nothing)
        other = self.group_index[chosen]
        spread = self.prior.spread / (NUM_CLASSES - 1)

        # The new one as the copier: its answers are the trials, each row's wrong answers the targets.
        theta_new, beta_new = self.ability(new), self._preferences(new)
        at, image, answer = self.answers.wrong_answers(chosen)  # every wrong answer of the chosen rows
        odds, count, rep_class, rep_wrong = self._odds_and_counts(image, answer, other[at])
        # Each chosen row's own tendencies: its preferences from its wrong answers, its θ.
        beta = self._preference_of(
            np.bincount(at * NUM_CLASSES + answer, minlength=len(chosen) * NUM_CLASSES)
            .reshape(len(chosen), NUM_CLASSES)
            .astype(np.float64),
            np.bincount(at * NUM_CLASSES + self.labels[image], minlength=len(chosen) * NUM_CLASSES)
            .reshape(len(chosen), NUM_CLASSES)
            .astype(np.float64),
        )
        theta = self._abilities(chosen)
        odds = odds * math.exp(theta_new)
        b_answer = beta_new[answer]
        # Per image first, then gathered: the same sums, in the same order, at a fraction of the cost.
        weighted, others_weight = self.counts @ beta_new, spread * (beta_new.sum() - beta_new[self.labels])
        denominator = weighted[image] - beta_new[rep_class] * rep_wrong + b_answer + others_weight[image]
        pi = odds / (1.0 + odds) * b_answer * count / denominator
        forward = np.bincount(at, weights=pi, minlength=len(chosen))

        # Each row as the copier: its answers are the trials, the new one's wrong answers the targets.
        slots = len(self.in_reference)  # every trainee of the answers, the left-out one's never read
        odds_t, count_t, rep_class_t, rep_wrong_t = self._odds_and_counts(
            np.broadcast_to(targets, (slots, k)),
            np.broadcast_to(new[targets], (slots, k)),
            np.broadcast_to(np.arange(slots)[:, None], (slots, k)),
        )
        odds_r = odds_t[other] * np.exp(theta)[:, None]
        b_answer_r = beta[:, new[targets]]
        rep_beta = beta.ravel()[rep_class_t[other] + NUM_CLASSES * np.arange(len(chosen))[:, None]]
        denominator_r = (
            beta @ self.counts[targets].T
            - rep_beta * rep_wrong_t[other]
            + b_answer_r
            + spread * (beta.sum(axis=1)[:, None] - beta[:, self.labels[targets]])
        )
        pi_r = odds_r / (1.0 + odds_r) * b_answer_r * count_t[other] / denominator_r
        reverse = pi_r.sum(axis=1)

        expected = np.maximum(forward, reverse)  # whichever way makes the match least surprising
        observed = agreement.same_wrong.astype(np.float64)
        lift_f, se_f = _fit_lift(_logit(pi), at, len(chosen), observed)
        by_row = np.broadcast_to(np.arange(len(chosen))[:, None], pi_r.shape).reshape(-1)
        lift_r, se_r = _fit_lift(_logit(pi_r.reshape(-1)), by_row, len(chosen), observed)
        use_forward = lift_f <= lift_r  # the direction in which the matches are least surprising
        # A model right on fewer than half the images (one that collapsed onto a class, say) is
        # not judged: two such models agree on almost everything, copied or not.
        limit = (1 - MIN_REFERENCE_ACCURACY) * len(self.labels)
        judged = (self.n_wrong_rows[chosen] <= limit) & (k <= limit)
        lift = np.where(judged, np.where(use_forward, lift_f, lift_r), np.nan)
        lift_se = np.where(judged, np.where(use_forward, se_f, se_r), np.nan)

        # Identical wrong answers on images more than half of the other trainees get right.
        others_wrong = self.n_wrong[targets][None, :] - self.rep_wrong[other[:, None], targets[None, :]]
        reference = self.answerers - self.in_reference[other].astype(np.int64)
        easy = np.count_nonzero(same & (2 * others_wrong < reference[:, None]), axis=1).astype(np.int64)
        return Comparison(chosen, agreement, expected, lift, lift_se, easy, reference)


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
    """The course's own entry code: the downloadable templates (the course's template with the
    migration to ``predict`` applied) and the worked examples' (``examples/*/``, shown to trainees).
    Every trainee may start from them, so handing one in unchanged says nothing about a pair."""
    from scorer.notebook import notebook_to_source

    hashes = set()
    paths = [*TEMPLATES.glob("submit_katakana.*"), *EXAMPLES.glob("*/submit_katakana.py")]
    for path in sorted(paths):
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
