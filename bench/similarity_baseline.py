"""Copy detection on course-like cohorts: does it flag copies, and only copies?

Builds, for each example (the NumPy MLP and CNN of ``examples/build_examples.py``, trained with their
own ``common/`` code on the course-format synthetic set), a cohort as a course has one: twelve
trainees who train the same template independently, each varying what trainees vary (seed, epochs,
hidden sizes, optimizer and learning rate, augmentation, batch size; two MLPs with a learning rate
too large, as a trainee's might be), each handing in two submissions (a snapshot half-way and the
final model). Then a copy of trainee 0's final model is handed in, one kind at a time (a course has a
copy here and there, not six of one model): the same weights re-zipped, 1 % of the parameters
perturbed, fine-tuned 1 epoch at a tenth of the learning rate, fine-tuned 3 epochs at the full rate,
and re-trained from the copied weights with a random-shift augmentation the original did not use,
for 2 epochs and at length (MLP 10 epochs, CNN 5).

Every pair of trainees is then judged as the service judges it, through ``scorer.similarity``:

- the old statistic, **error agreement** (of the images both got wrong, the share with the same wrong
  class), the pair's strongest pair of submissions with at least 20 shared mistakes, flagged at 0.90;
- the new one, the **copy index**: the identical wrong answers expected under independence (each
  image's answers in the rest of the cohort, each model's error rate and class preferences), the
  lift of the observed over them, and its z against the cohort's own pairs (``CopyNull``), flagged
  at ``z_needed``: one false alarm in a thousand pairs, shared out over the pairs of submissions
  compared.

It prints every pair (independent and copied) with both statistics, the false alarms and the copies
caught, for each cohort alone, for the two mixed in one cohort, and for small cohorts cut from the
twelve (how small is too small). Trained predictions are cached (``--cache``), so a second run only
recomputes the statistics.

    .venv/bin/python bench/similarity_baseline.py --cache .cache/similarity-baseline  # docs/benchmarks.md
    .venv/bin/python bench/similarity_baseline.py --models mlp --trainees 6 --quick   # a smoke run
    .venv/bin/python bench/similarity_baseline.py --cache DIR --fit-prior             # scorer's PRIOR
    .venv/bin/python bench/similarity_baseline.py --cache DIR --other-measures        # what else was tried
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as in the sandbox; set before numpy loads

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from examples import build_examples as ex  # noqa: E402
from examples.build_examples import Recipe  # noqa: E402
from scorer.similarity import MIN_REFERENCE_ACCURACY, PRIOR, CopyNull, Prior, Reference, compare, z_needed  # noqa: E402

R = Recipe


@dataclass(frozen=True)
class Trainee:
    """One independent trainee: how they train, for how long, from which seed."""

    recipe: Recipe
    epochs: int
    seed: int


# Twelve independent trainees per example, varied as trainees vary the template. The two MLPs with
# SGD at a learning rate of 1.5 and 3 are the "diverged" ones a cohort has.
MLP_TRAINEES = [
    Trainee(R(hidden=(100,), optimizer="sgd", lr=0.1, shift=0), 60, 0),  # the copies' source
    Trainee(R(hidden=(64,), optimizer="sgd", lr=0.05, shift=0), 80, 1),
    Trainee(R(hidden=(300,), optimizer="sgd", lr=0.2, shift=0), 30, 2),
    Trainee(R(hidden=(200,), optimizer="sgd", lr=0.1, shift=1), 50, 3),
    Trainee(R(hidden=(150,), optimizer="sgd", lr=0.15, shift=2), 70, 4),
    Trainee(R(hidden=(100, 100), optimizer="adam", lr=0.001, shift=2), 60, 5),
    Trainee(R(hidden=(256, 128), optimizer="adam", lr=0.0005, shift=2), 40, 6),
    Trainee(R(hidden=(80,), optimizer="sgd", lr=0.1, shift=0, batch_size=50), 40, 7),
    Trainee(R(hidden=(120, 60), optimizer="sgd", lr=0.05, shift=1), 80, 8),
    Trainee(R(hidden=(200,), optimizer="adam", lr=0.002, shift=0, batch_size=200), 30, 9),
    Trainee(R(hidden=(100,), optimizer="sgd", lr=1.5, shift=0), 40, 10),
    Trainee(R(hidden=(300,), optimizer="sgd", lr=3.0, shift=0), 30, 11),
]
CNN_TRAINEES = [
    Trainee(R(hidden=(100,), channels=(16, 32), lr=0.001, shift=0), 10, 0),  # the copies' source
    Trainee(R(hidden=(64,), channels=(8, 16), lr=0.002, shift=2), 12, 1),
    Trainee(R(hidden=(128,), channels=(16, 32), lr=0.001, shift=1), 8, 2),
    Trainee(R(hidden=(100,), channels=(12, 24), lr=0.0005, shift=2), 14, 3),
    Trainee(R(hidden=(80,), channels=(16, 16), lr=0.001, shift=2, batch_size=50), 8, 4),
    Trainee(R(hidden=(100,), channels=(16, 32), lr=0.001, shift=2), 12, 5),
    Trainee(R(hidden=(64,), channels=(8, 32), lr=0.0015, shift=1), 10, 6),
    Trainee(R(hidden=(100,), channels=(16, 32), lr=0.003, shift=0, batch_size=200), 8, 7),
    Trainee(R(hidden=(120,), channels=(12, 24), lr=0.001, shift=2), 10, 8),
    Trainee(R(hidden=(100,), channels=(8, 16), lr=0.001, shift=0), 12, 9),
    Trainee(R(hidden=(64,), channels=(16, 32), lr=0.0007, shift=1), 14, 10),
    Trainee(R(hidden=(100,), channels=(16, 24), lr=0.002, shift=2), 9, 11),
]
TRAINEES = {"mlp": MLP_TRAINEES, "cnn": CNN_TRAINEES}
COPY_KINDS = (
    "re-zipped",
    "1 % perturbed",
    "fine-tuned 1 epoch",
    "fine-tuned 3 epochs",
    "re-trained 2 epochs, augmented",
    "re-trained at length, augmented",
)
_CACHE_NAMES = {"re-trained at length, augmented": "re-trained, augmented"}  # as first cached
EXPECTED_MISS = {"fine-tuned 3 epochs"}  # the target: every copy caught but this one
LONG_RETRAIN = {"mlp": 10, "cnn": 5}  # epochs of the longer augmented re-training
# Re-trained at length, a copy is as far from its source as another trainee's model: not expected.
BEYOND = {"re-trained at length, augmented"}


@dataclass
class Submission:
    trainee: str  # "t00".."t11" or the copy's kind
    label: str
    predictions: np.ndarray
    accuracy: float


def perturb(params: dict[str, np.ndarray], fraction: float, seed: int) -> dict[str, np.ndarray]:
    """``fraction`` of every array's entries get noise as large as that array's spread."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, value in params.items():
        value = value.copy()
        flat = value.reshape(-1)
        count = max(1, round(fraction * flat.size))
        chosen = rng.choice(flat.size, size=count, replace=False)
        spread = float(flat.std()) or 1e-3
        flat[chosen] += rng.normal(0.0, spread, size=count).astype(flat.dtype)
        out[key] = value
    return out


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


class Cache:
    """Predictions by what produced them: the model, its recipe, epochs, seed, and the data."""

    def __init__(self, folder: Path, data_key: str) -> None:
        self.folder = folder
        self.data_key = data_key
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, *parts: object) -> np.ndarray | None:
        path = self.folder / f"{_key(self.data_key, *parts)}.npy"
        return np.load(path) if path.exists() else None

    def put(self, array: np.ndarray, *parts: object) -> None:
        path = self.folder / f"{_key(self.data_key, *parts)}.npy"
        tmp = path.with_suffix(".part.npy")
        np.save(tmp, array)
        tmp.replace(path)


def build_cohort(name: str, data: ex.Data, cache: Cache, trainees: int, quick: bool) -> list[Submission]:
    """The twelve (or ``trainees``) independent trainees' two submissions each, then the copies."""
    assert data.test is not None
    images, labels = data.test.data, data.test.labels
    out: list[Submission] = []
    trained: dict[str, dict[str, np.ndarray]] = {}
    chosen = TRAINEES[name][:trainees]
    for index, person in enumerate(chosen):
        epochs = 2 if quick else person.epochs
        half = max(1, epochs // 2)
        tag = (name, dataclasses.astuple(person.recipe), epochs, person.seed)
        cached = [cache.get(*tag, "half"), cache.get(*tag, "final")]
        if any(c is None for c in cached):
            started = time.perf_counter()
            snapshots: dict[int, dict[str, np.ndarray]] = {}
            params = ex.train(
                name,
                data.train,
                epochs=epochs,
                seed=person.seed,
                recipe=person.recipe,
                after_epoch=snapshots.__setitem__,
            )
            cached = [
                ex.predict_params(name, snapshots[half], images, person.recipe),  # the half-way snapshot
                ex.predict_params(name, params, images, person.recipe),
            ]
            cache.put(cached[0], *tag, "half")
            cache.put(cached[1], *tag, "final")
            print(
                f"  {name} t{index:02d}: trained {epochs} epochs in {time.perf_counter() - started:.0f} s", flush=True
            )
            if index == 0:
                trained["source"] = params
        for label, predictions in zip((f"epoch {half}", f"epoch {epochs}"), cached, strict=True):
            out.append(Submission(f"t{index:02d}", label, predictions, float(np.mean(predictions == labels))))

    first = chosen[0]

    def source() -> dict[str, np.ndarray]:
        """Trainee 0's final model, trained again only when a copy is not cached yet."""
        if "source" not in trained:
            trained["source"] = ex.train(
                name, data.train, epochs=2 if quick else first.epochs, seed=first.seed, recipe=first.recipe
            )
        return trained["source"]

    recipe = first.recipe
    tuned_1 = dataclasses.replace(recipe, lr=recipe.lr * 0.1)
    augmented = dataclasses.replace(recipe, shift=2)
    retrain_epochs = 1 if quick else LONG_RETRAIN[name]
    makers = {
        "re-zipped": source,
        "1 % perturbed": lambda: perturb(source(), 0.01, 1),
        "fine-tuned 1 epoch": lambda: ex.train(name, data.train, epochs=1, seed=101, recipe=tuned_1, start=source()),
        "fine-tuned 3 epochs": lambda: ex.train(name, data.train, epochs=3, seed=102, recipe=recipe, start=source()),
        "re-trained 2 epochs, augmented": lambda: ex.train(
            name, data.train, epochs=1 if quick else 2, seed=104, recipe=augmented, start=source()
        ),
        "re-trained at length, augmented": lambda: ex.train(
            name, data.train, epochs=retrain_epochs, seed=103, recipe=augmented, start=source()
        ),
    }
    for kind, make in makers.items():
        tag = (
            name,
            dataclasses.astuple(recipe),
            2 if quick else first.epochs,
            first.seed,
            "copy",
            _CACHE_NAMES.get(kind, kind),
        )
        predictions = cache.get(*tag)
        if predictions is None:
            predictions = ex.predict_params(name, make(), images, recipe)
            cache.put(predictions, *tag)
        out.append(Submission(kind, "copy of t00", predictions, float(np.mean(predictions == labels))))
    return out


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    kind: str  # "independent", "copy" (the source and a copy) or "copies" (two copies of one source)
    old_rate: float  # error agreement of the strongest pair of submissions (with enough shared mistakes)
    old_both: int
    old_flagged: bool
    z: float  # the copy index of the strongest pair of submissions
    needed: float  # the z it must reach for the pair's number of compared submission pairs
    observed: int
    expected: float
    easy: int
    lift: float

    @property
    def flagged(self) -> bool:
        return bool(self.z >= self.needed)  # NaN (not judged) never is


def _kind(a: str, b: str) -> str:
    """A copy's pair with its source is a copy; every other pair is independent."""
    bare = b.removeprefix("mlp-").removeprefix("cnn-")
    return "copy" if a.endswith("t00") and bare in COPY_KINDS and a[: -len("t00")] == b[: -len(bare)] else "independent"


def evaluate(submissions: list[Submission], labels: np.ndarray, prior: Prior = PRIOR) -> list[PairResult]:
    """Every pair of trainees, as the service judges it: each submission of one trainee against every
    submission of the other, the rest of the cohort as the reference, and each pair's strongest pair
    of submissions kept (by the prior's null); then every pair standardised against the cohort's own
    null, as the page does."""
    names = list(dict.fromkeys(s.trainee for s in submissions))
    by_name = {n: [s for s in submissions if s.trainee == n] for n in names}
    prior_null = CopyNull(prior.center, prior.scale, 0)
    stored = []
    for later_index, later in enumerate(names):
        earlier = names[:later_index]
        if not earlier:
            continue
        # The whole cohort is the reference, as after the worker's refresh of a cohort.
        rows = [s for n in names if n != later for s in by_name[n]]
        groups = np.array([names.index(s.trainee) for s in rows])
        reference = Reference(labels, np.stack([s.predictions for s in rows]), groups, prior)
        best: dict[str, tuple[float, int, float, int, float, float]] = {}
        old: dict[str, tuple[float, int]] = {}
        for mine in by_name[later]:
            every = compare(mine.predictions, reference.stack, labels)  # for the old statistic
            rate = every.error_agreement()
            result = reference.compare_strongest(mine.predictions)  # as the worker: its shortlist only
            strength = np.full(len(rows), np.nan)
            strength[result.rows] = prior_null.z(result.lift, result.lift_se)
            position = {int(i): j for j, i in enumerate(result.rows)}
            for r, s in enumerate(rows):
                if s.trainee not in earlier:
                    continue
                z = float(np.nan_to_num(strength[r], nan=-np.inf))  # NaN: not judged or not shortlisted
                j = position.get(r)
                if j is not None and (s.trainee not in best or z > best[s.trainee][0]):
                    best[s.trainee] = (z, int(result.agreement.same_wrong[j]), float(result.expected[j]),
                                       int(result.same_wrong_easy[j]), float(result.lift[j]),
                                       float(result.lift_se[j]))  # fmt: skip
                both = int(every.both_wrong[r])
                key = (both >= OLD_MIN_SHARED, float(np.nan_to_num(rate[r], nan=-1.0)), both)
                current = old.get(s.trainee)
                if current is None or key > (current[1] >= OLD_MIN_SHARED, current[0], current[1]):
                    old[s.trainee] = (key[1], both)
        for other in earlier:
            _, observed, expected, easy, lift, se = best[other]
            rate, both = old[other]
            m = len(by_name[later]) * len(by_name[other])
            stored.append((other, later, rate, both, observed, expected, easy, m, lift, se))
    usable = {s.trainee for s in submissions if s.accuracy >= MIN_REFERENCE_ACCURACY}
    counted = [s for s in stored if s[0] in usable and s[1] in usable]
    null = CopyNull.of([s[8] for s in counted], [s[9] for s in counted], prior)
    return [
        PairResult(
            a, b, _kind(a, b), rate, both, rate >= OLD_THRESHOLD and both >= OLD_MIN_SHARED,
            float(null.z(lift, se)), z_needed(m), observed, expected, easy, lift,
        )
        for a, b, rate, both, observed, expected, easy, m, lift, se in stored
    ]  # fmt: skip


OLD_THRESHOLD = 0.90
OLD_MIN_SHARED = 20


def print_pairs(title: str, results: list[PairResult], show_independent: bool = True) -> None:
    print(f"\n### {title}\n")
    print(
        "| pair | kind | error agreement (old) | old flags | z (new) | z needed "
        "| same wrong answers: observed / expected | on images most get right | new flags |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    order = sorted(results, key=lambda r: (r.kind == "independent", -np.nan_to_num(r.z, nan=-np.inf)))
    for r in order:
        if r.kind == "independent" and not show_independent:
            continue
        print(
            f"| {r.a} – {r.b} | {r.kind} | {r.old_rate:.3f} ({r.old_both}) | {'yes' if r.old_flagged else ''} | "
            f"{r.z:.2f} | {r.needed:.2f} | {r.observed} / {r.expected:.1f} | {r.easy} | {'yes' if r.flagged else ''} |"
        )


def summary(title: str, results: list[PairResult]) -> str:
    independent = [r for r in results if r.kind == "independent"]
    copies = [r for r in results if r.kind == "copy"]
    missed = [r.b for r in copies if not r.flagged]
    old_missed = [r.b for r in copies if not r.old_flagged]
    z_ind = max((r.z for r in independent), default=float("nan"))
    return (
        f"{title}: {len(independent)} independent pairs flagged: old {sum(r.old_flagged for r in independent)}, "
        f"new {sum(r.flagged for r in independent)} (largest z {z_ind:.2f}); copies caught: old "
        f"{len(copies) - len(old_missed)}/{len(copies)}, new {len(copies) - len(missed)}/{len(copies)}"
        + (f" (new misses: {', '.join(missed)})" if missed else "")
    )


def with_each_copy(independents: list[Submission], copies: list[Submission], labels: np.ndarray) -> list[PairResult]:
    """The independent cohort's pairs, then each copy handed in alone into it (a course has a copy
    here and there, not five of one model: five would make each other's mistakes look common)."""
    results = evaluate(independents, labels)
    for copy in copies:
        for r in evaluate([*independents, copy], labels):
            if copy.trainee in (r.a, r.b):
                results.append(r)
    return results


def _copies_of(submissions: list[Submission]) -> list[Submission]:
    return [s for s in submissions if s.trainee in COPY_KINDS]


def _independents(submissions: list[Submission]) -> list[Submission]:
    return [s for s in submissions if s.trainee not in COPY_KINDS]


def small_cohorts(name: str, submissions: list[Submission], labels: np.ndarray) -> list[str]:
    """Cohorts of 2–10 trainees cut from the twelve, with trainee 0 and one copy of them in each."""
    independents, copies = _independents(submissions), _copies_of(submissions)
    names = list(dict.fromkeys(s.trainee for s in independents if s.trainee != "t00"))
    lines = []
    for size in (2, 3, 4, 6, 8, 10):
        if size - 1 > len(names):
            continue
        flagged = total = caught = tried = 0
        largest = -np.inf
        rng = np.random.default_rng(size)
        for draw in range(10):
            pick = {"t00", *rng.choice(names, size=size - 2, replace=False).tolist()}
            copy = copies[draw % len(copies)]
            for r in evaluate([*(s for s in independents if s.trainee in pick), copy], labels):
                if r.kind == "independent":
                    flagged += r.flagged
                    total += 1
                    largest = max(largest, r.z)
                elif r.kind == "copy" and copy.trainee not in EXPECTED_MISS | BEYOND:
                    caught += r.flagged
                    tried += 1
        lines.append(
            f"{name.upper()} cohorts of {size} (10 draws, each with one copy of t00): independent pairs flagged "
            f"{flagged}/{total} (largest z {largest:.2f}); copies caught (not counting the 3-epoch fine-tune and the "
            "long re-training) "
            f"{caught}/{tried}"
        )
    return lines


def report(cohorts: dict[str, list[Submission]], labels: np.ndarray) -> None:
    lines = []
    for name, submissions in cohorts.items():
        print(f"\n## {name.upper()} cohort\n")
        for s in submissions:
            print(f"- {s.trainee} {s.label}: test accuracy {s.accuracy:.3f}")
        results = with_each_copy(_independents(submissions), _copies_of(submissions), labels)
        print_pairs(f"{name.upper()}: every pair", results)
        lines.append(summary(f"{name.upper()} cohort", results))
    if len(cohorts) > 1:
        renamed = {
            name: [dataclasses.replace(s, trainee=f"{name}-{s.trainee}") for s in _independents(subs)]
            for name, subs in cohorts.items()
        }
        mixed = [s for subs in renamed.values() for s in subs]
        results = evaluate(mixed, labels)
        for name, subs in cohorts.items():
            for copy in _copies_of(subs):
                source = f"{name}-t00"
                tagged = dataclasses.replace(copy, trainee=f"{name}-{copy.trainee}")
                for r in evaluate([*mixed, tagged], labels):
                    if tagged.trainee in (r.a, r.b):
                        kind = "copy" if source in (r.a, r.b) else "independent"
                        results.append(dataclasses.replace(r, kind=kind))
        print_pairs(
            "Both examples in one cohort (copies and the strongest independent pairs)",
            sorted(results, key=lambda r: -np.nan_to_num(r.z, nan=-np.inf))[:40],
        )
        lines.append(summary("MLP and CNN in one cohort", results))
    for name, submissions in cohorts.items():
        lines.extend(small_cohorts(name, submissions, labels))
    print("\n## Summary\n")
    for line in lines:
        print(f"- {line}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (2 cores)")


_LGAMMA = np.vectorize(math.lgamma)


def _log_beta(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray(_LGAMMA(x) + _LGAMMA(y) - _LGAMMA(x + y))


def fit_prior(cohorts: dict[str, list[Submission]], labels: np.ndarray) -> None:
    """The prior's values from each cohort's independent trainees (their final models, right on at
    least half the images): a beta-binomial fit of how many get each image wrong, a Dirichlet-
    multinomial fit of how their wrong answers spread over the classes, and where the lifts of their
    pairs lie (median, and the spread above it)."""
    grid_a = np.exp(np.linspace(np.log(0.002), np.log(3.0), 40))
    grid_b = np.exp(np.linspace(np.log(0.05), np.log(100.0), 40))
    for name, submissions in cohorts.items():
        final = {s.trainee: s for s in _independents(submissions) if s.accuracy >= MIN_REFERENCE_ACCURACY}
        answers = np.stack([s.predictions for s in final.values()]).astype(np.int64)
        wrong = answers != labels
        counts, n = np.bincount(wrong.sum(axis=0), minlength=len(final) + 1).astype(np.float64), len(final)
        k = np.arange(n + 1, dtype=np.float64)
        best = max(
            (float(counts @ (_log_beta(k + a, n - k + b) - _log_beta(np.array(a), np.array(b)))), a, b)
            for a in grid_a
            for b in grid_b
        )
        spread_rows = []
        for i in np.flatnonzero(wrong.sum(axis=0) >= 2):
            spread_rows.append(np.bincount(answers[wrong[:, i], i], minlength=15))
        table = np.array(spread_rows, dtype=np.float64)

        def dm(spread: float, table: np.ndarray = table) -> float:
            alpha = spread / 14
            totals = table.sum(axis=1)
            used = table[table > 0]
            return float(
                np.sum(_LGAMMA(spread) - _LGAMMA(totals + spread)) + np.sum(_LGAMMA(used + alpha) - math.lgamma(alpha))
            )

        spread = max(np.exp(np.linspace(np.log(0.01), np.log(50.0), 60)), key=dm)
        results = evaluate(_independents(submissions), labels)
        lifts = [r.lift for r in results if np.isfinite(r.lift)]
        median = float(np.median(lifts))
        above = np.array(lifts)[np.array(lifts) > median] - median
        print(
            f"{name.upper()}: Prior(wrong={best[1]:.3f}, right={best[2]:.2f}, spread={spread:.2f}, "
            f"center={median:.2f}, scale={1.4826 * float(np.median(above)):.2f}) from {n} models, {len(lifts)} pairs"
        )


def _matching_error_rate(p: np.ndarray, wrong: int) -> np.ndarray:
    """Per image, the chance of a wrong answer for a model with ``wrong`` mistakes: the images' rates
    ``p`` shifted in log-odds (by bisection) until their sum is ``wrong``."""
    logits, low, high = np.log(p / (1 - p)), -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if (1 / (1 + np.exp(-(logits + mid)))).sum() > wrong else (mid, high)
    return np.asarray(1 / (1 + np.exp(-(logits + (low + high) / 2))))


def _pair_measures(answers: np.ndarray, labels: np.ndarray, a: int, b: int) -> tuple[float, float, float, float]:
    """Other evidence a pair's predictions offer, each against independence given each image's
    difficulty in the rest of the cohort and each model's error rate: the excess of images both got
    wrong (z), the correlation of their residual correctness, all identical answers right or wrong
    (Wollack's full ω, z) and identical right answers on hard images (most of the rest wrong; z)."""
    wrong = answers != labels
    rest = [k for k in range(len(answers)) if k not in (a, b)]
    p = (wrong[rest].sum(axis=0) + PRIOR.wrong) / (len(rest) + PRIOR.wrong + PRIOR.right)
    pa, pb = _matching_error_rate(p, int(wrong[a].sum())), _matching_error_rate(p, int(wrong[b].sum()))
    both = pa * pb
    z_both = (float((wrong[a] & wrong[b]).sum()) - both.sum()) / math.sqrt(float((both * (1 - both)).sum()))
    correlation = float(np.mean((wrong[a] - pa) / np.sqrt(pa * (1 - pa)) * (wrong[b] - pb) / np.sqrt(pb * (1 - pb))))
    counts = np.zeros((len(labels), 15))
    for k in rest:
        counts[np.arange(len(labels)), answers[k]] += 1
    same = ((counts + 0.1) / (len(rest) + 1.5))[np.arange(len(labels)), answers[a]]
    z_full = (float((answers[a] == answers[b]).sum()) - same.sum()) / math.sqrt(float((same * (1 - same)).sum()))
    hard = p > 0.3
    right = (1 - pa) * (1 - pb) * hard
    z_hard = (float((~wrong[a] & ~wrong[b] & hard).sum()) - right.sum()) / math.sqrt(float((right * (1 - right)).sum()))
    return z_both, correlation, z_full, z_hard


def other_measures(cohorts: dict[str, list[Submission]], labels: np.ndarray) -> None:
    """Whether any other statistic of the predictions separates a copy from the independent pairs:
    each copy handed in alone beside the usable independent trainees' final models; a measure
    catches a copy only if the copy's pair with its source scores above every independent pair."""
    titles = ("shared mistakes z", "residual correlation", "full ω z", "right on hard images z")
    for name, submissions in cohorts.items():
        finals = {s.trainee: s for s in _independents(submissions)}  # the last of each is the final model
        usable = [n for n, s in finals.items() if s.accuracy >= MIN_REFERENCE_ACCURACY]
        print(f"\n### {name.upper()}: other measures ({len(usable)} usable independent trainees)\n")
        print(f"| pair | {' | '.join(titles)} |\n| --- | --- | --- | --- | --- |")
        largest: list[tuple[float, str]] = [(-math.inf, "")] * len(titles)
        for copy in _copies_of(submissions):
            answers = np.stack([finals[n].predictions for n in usable] + [copy.predictions]).astype(np.int64)
            names = [*usable, copy.trainee]
            for a in range(len(names)):
                for b in range(a + 1, len(names)):
                    values = _pair_measures(answers, labels, a, b)
                    if (names[a], names[b]) == ("t00", copy.trainee):
                        print(f"| t00 – {copy.trainee} | {' | '.join(f'{v:.2f}' for v in values)} |")
                        continue
                    for m, v in enumerate(values):
                        largest[m] = max(largest[m], (v, f"{names[a]} – {names[b]}"))
        print(f"| largest independent pair | {' | '.join(f'{v:.2f} ({pair})' for v, pair in largest)} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", nargs="+", default=list(ex.EXAMPLE_NAMES), choices=ex.EXAMPLE_NAMES)
    parser.add_argument("--trainees", type=int, default=12, help="independent trainees per example (at most 12)")
    parser.add_argument("--quick", action="store_true", help="2 epochs per model: a smoke run, not the figures")
    parser.add_argument("--cache", type=Path, default=None, help="folder keeping trained predictions between runs")
    parser.add_argument("--train-only", action="store_true", help="fill the cache and stop")
    parser.add_argument("--fit-prior", action="store_true", help="print the prior fitted on these cohorts")
    parser.add_argument("--other-measures", action="store_true", help="other statistics of the copies' predictions")
    args = parser.parse_args(argv)

    data = ex.synthetic_data()
    assert data.test is not None
    data_key = _key(data.train.data.tobytes()[:100_000], data.test.labels.tobytes())
    print(f"{len(data.train.data)} training images, {len(data.test.labels)} test images; load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="similarity-baseline-") as tmp:
        cache = Cache(args.cache or Path(tmp), data_key)
        cohorts = {name: build_cohort(name, data, cache, args.trainees, args.quick) for name in args.models}
    if args.train_only:
        return 0
    if args.fit_prior:
        fit_prior(cohorts, data.test.labels)
        return 0
    if args.other_measures:
        other_measures(cohorts, data.test.labels)
        return 0
    report(cohorts, data.test.labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
