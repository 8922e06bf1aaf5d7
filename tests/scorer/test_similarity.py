"""Similarity evidence: error agreement counts, the strongest pair per trainee, file digests, and the
predictions and digests the real scoring pipeline keeps (outside the report trainees see)."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from scorer.pipeline import ScoringConfig, score_submission
from scorer.runtime import find_runtime
from scorer.sandbox.types import Limits, MiB
from scorer.similarity import (
    EXAMPLES,
    PRIOR,
    TEMPLATES,
    CopyNull,
    Reference,
    code_hash,
    compare,
    file_hashes,
    normalised_code,
    predictions_from_bytes,
    predictions_to_bytes,
    z_needed,
)
from tests.fixtures.artifacts import DataSet, Examples


def test_error_agreement_counts_only_images_both_got_wrong() -> None:
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    new = np.array([0, 1, 9, 9, 9, 5, 6, 7])  # wrong on images 2, 3, 4 (all as class 9)
    others = np.array(
        [
            [0, 1, 9, 9, 9, 5, 6, 7],  # a copy: both wrong 3, same 3
            [0, 1, 8, 9, 4, 5, 6, 7],  # wrong on 2 (as 8) and 3 (as 9): both wrong 2, same 1
            [1, 2, 2, 3, 4, 6, 7, 8],  # wrong elsewhere only: no shared mistake
        ]
    )
    result = compare(new, others, labels)
    assert result.both_wrong.tolist() == [3, 2, 0]
    assert result.same_wrong.tolist() == [3, 1, 0]
    assert result.agree.tolist() == [8, 6, 0]
    assert result.total == 8
    rate = result.error_agreement()
    assert rate[0] == 1.0 and rate[1] == 0.5 and np.isnan(rate[2])


def test_compare_refuses_mismatched_shapes_and_handles_no_others() -> None:
    with pytest.raises(ValueError, match="shapes"):
        compare(np.zeros(5), np.zeros((2, 4)), np.zeros(5))
    empty = compare(np.zeros(5), np.zeros((0, 5)), np.zeros(5))
    assert empty.both_wrong.size == 0 and empty.total == 5


class Answerers:
    """Independent models as the copy index assumes them, plus what real cohorts add: each image has
    a difficulty and a class it is mistaken for, each model an error rate; models err independently
    given those. A copy is another model's answers with a few changed."""

    def __init__(self, images: int = 3000, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.labels = np.repeat(np.arange(15), images // 15)
        self.difficulty = self.rng.beta(0.2, 3.0, size=len(self.labels))  # most images easy, a few hard
        self.likely = (self.labels + self.rng.integers(1, 15, size=len(self.labels))) % 15

    def model(self, error_rate: float) -> np.ndarray:
        n = len(self.labels)
        odds = np.log(self.difficulty / (1 - self.difficulty)) + np.log(error_rate / 0.06)
        wrong = self.rng.random(n) < 1 / (1 + np.exp(-odds))
        other = (self.labels + self.rng.integers(1, 15, size=n)) % 15
        guess = np.where(self.rng.random(n) < 0.7, self.likely, other)
        return np.where(wrong, guess, self.labels).astype(np.uint8)

    def copy(self, source: np.ndarray, changed: float) -> np.ndarray:
        out = source.copy()
        chosen = self.rng.random(len(out)) < changed
        out[chosen] = np.where(self.rng.random(int(chosen.sum())) < 0.9, self.labels[chosen], self.likely[chosen])
        return out


def _judge(cohort: dict[str, list[np.ndarray]], labels: np.ndarray) -> dict[frozenset[str], tuple[float, float]]:
    """Every pair of trainees as the service judges it: (z, z needed) of its strongest pair of submissions."""
    names = list(cohort)
    stored = {}
    for i, name in enumerate(names):
        rows = [(other, p) for other in names if other != name for p in cohort[other]]
        reference = Reference(labels, np.stack([p for _, p in rows]), np.array([names.index(o) for o, _ in rows]))
        for mine in cohort[name]:
            result = reference.compare(mine)
            for r, (other, _) in enumerate(rows):
                if names.index(other) >= i:
                    continue
                key = frozenset((name, other))
                strength = CopyNull(PRIOR.center, PRIOR.scale, 0).z(result.lift[r], result.lift_se[r])
                if key not in stored or strength > stored[key][0]:
                    stored[key] = (float(strength), float(result.lift[r]), float(result.lift_se[r]))
    null = CopyNull.of([v[1] for v in stored.values()], [v[2] for v in stored.values()])
    return {
        key: (float(null.z(lift, se)), z_needed(len(cohort[min(key)]) * len(cohort[max(key)])))
        for key, (_, lift, se) in stored.items()
    }


def test_an_independent_cohort_flags_nothing_and_planted_copies_are_flagged() -> None:
    world = Answerers()
    cohort = {f"t{i:02d}": [world.model(rate), world.model(rate * 0.8)] for i, rate in
              enumerate(np.linspace(0.03, 0.15, 24))}  # fmt: skip
    source = cohort["t05"][1]
    cohort["same weights"] = [source.copy()]
    cohort["perturbed"] = [world.copy(source, 0.02)]
    judged = _judge(cohort, world.labels)
    copies = {frozenset(("t05", "same weights")), frozenset(("t05", "perturbed")),
              frozenset(("same weights", "perturbed"))}  # fmt: skip
    flagged = {key for key, (z, needed) in judged.items() if z >= needed}
    assert flagged == copies
    independent = [z for key, (z, _) in judged.items() if key not in copies]
    assert len(independent) == 26 * 25 // 2 - 3 and max(independent) < z_needed(1)


def test_two_models_collapsed_onto_one_class_are_not_judged() -> None:
    world = Answerers(images=1500)
    stack = np.stack([world.model(0.05) for _ in range(6)] + [np.zeros(1500, dtype=np.uint8)])
    reference = Reference(world.labels, stack, np.arange(7))
    result = reference.compare(np.zeros(1500, dtype=np.uint8))  # the same collapse: all ア
    assert result.agreement.same_wrong[6] == 1400 and np.isnan(result.lift).all()
    good = reference.compare(world.model(0.05))
    assert np.isfinite(good.lift[:6]).all() and np.isnan(good.lift[6])
    assert int(reference.in_reference.sum()) == 6  # and it does not teach the reference which images are hard


def test_a_small_cohort_rests_on_the_prior_and_a_large_one_on_itself() -> None:
    assert CopyNull.of([], []) == CopyNull(PRIOR.center, PRIOR.scale, 0)
    few = CopyNull.of([0.0, 0.1, 0.2], [0.05, 0.05, 0.05])
    assert abs(few.center - PRIOR.center) < 0.02 and abs(few.scale - PRIOR.scale) < 0.1 and few.pairs == 3
    rng = np.random.default_rng(1)
    many = CopyNull.of(rng.normal(1.0, 0.3, 5000), np.full(5000, 0.01))
    assert abs(many.center - 1.0) < 0.05 and abs(many.scale - 0.3) < 0.05
    # With no other trainee, the expectation comes from the prior alone, and stays finite.
    world = Answerers(images=1500)
    a = world.model(0.05)
    alone = Reference(world.labels, a[None, :], np.array([1])).compare(world.model(0.05))
    assert alone.reference_trainees.tolist() == [0] and np.isfinite(alone.expected).all()
    assert alone.same_wrong_easy.tolist() == [0]  # "most of the cohort" means nothing without one


def test_the_threshold_rises_with_the_pairs_of_submissions_compared() -> None:
    assert abs(z_needed(1) - 3.09) < 0.01
    assert z_needed(4) > z_needed(2) > z_needed(1)
    assert abs(z_needed(100) - 4.26) < 0.01


def test_predictions_take_one_byte_each_and_stay_in_range() -> None:
    ids = np.arange(15).repeat(3)
    data = predictions_to_bytes(ids)
    assert len(data) == 45
    assert predictions_from_bytes(data).tolist() == ids.tolist()
    with pytest.raises(ValueError):
        predictions_to_bytes(np.array([0, 15]))
    with pytest.raises(ValueError):
        predictions_to_bytes(np.array([-1]))


def test_code_digest_ignores_layout_and_comments_but_not_code() -> None:
    original = "import numpy as np\n\ndef predict(x):\n    return np.argmax(x, axis=1)\n"
    relaid = "# copied :)\nimport numpy as np\n\n\n\ndef predict( x ):  # mine\n  return np.argmax(x,axis=1)\n"
    assert normalised_code(original) == normalised_code(relaid)
    assert code_hash(original) == code_hash(relaid.encode("utf-8"))
    assert code_hash(original) != code_hash(original.replace("axis=1", "axis=-1"))
    # Source that does not tokenise still gets a digest that ignores blank lines and comments.
    broken = "def predict(x:\n    return x  # oops\n"
    assert normalised_code(broken) == normalised_code("def predict(x:\n\n     return x\n")


def test_file_digests_cover_the_zip_weight_files_and_code_but_not_empty_files_or_the_template(
    tmp_path: Path,
) -> None:
    root = tmp_path / "sub"
    (root / "model" / "deep").mkdir(parents=True)
    (root / "model" / "deep" / "w.NPY").write_bytes(b"weights")
    (root / "katakana_model.pickle").write_bytes(pickle.dumps({"W1": [1, 2]}))
    (root / "empty.pkl").write_bytes(b"")
    (root / "notes.txt").write_text("not a weight file")
    hashes = file_hashes("ab" * 32, root, "def predict(x):\n    return x\n", "submit_katakana.py")
    kinds = [(h.kind, h.name) for h in hashes]
    assert kinds == [
        ("zip", ""),
        ("weights", "katakana_model.pickle"),
        ("weights", "model/deep/w.NPY"),
        ("code", "submit_katakana.py"),
    ]
    template = (TEMPLATES / "submit_katakana.py").read_bytes()
    assert [h.kind for h in file_hashes("", root, template, "submit_katakana.py")] == ["weights", "weights"]
    # The course's worked examples are templates too: every trainee may hand one in unchanged.
    for example in sorted(EXAMPLES.glob("*/submit_katakana.py")):
        relaid = "# mine\n" + example.read_text(encoding="utf-8")
        assert [h.kind for h in file_hashes("", root, relaid, "submit_katakana.py")] == ["weights", "weights"]
    assert {path.parent.name for path in EXAMPLES.glob("*/submit_katakana.py")} == {"mlp", "cnn", "course_cnn"}


LIMITS = Limits(wall_seconds=120.0, memory_bytes=2048 * MiB)


@pytest.mark.sandbox
def test_scoring_keeps_predictions_and_digests_out_of_the_trainees_report(
    tmp_path: Path, synthetic_set: DataSet, example_zips: Examples
) -> None:
    config = ScoringConfig(runtime=find_runtime(), limits=LIMITS, smoke_limits=LIMITS)
    report = score_submission(
        example_zips.mlp_zip, test_data=synthetic_set.test_data, test_labels=synthetic_set.test_label, config=config
    )
    assert report.status == "succeeded", report.error
    labels = np.load(synthetic_set.test_label).argmax(axis=1)
    kept = report.prediction_bytes
    assert kept is not None and len(kept) == 14_500  # one byte per hidden-set image
    assert int((predictions_from_bytes(kept) == labels).sum()) == report.correct
    by_kind = {(h.kind, h.name): h.sha256 for h in report.file_hashes}
    assert by_kind[("zip", "")] == report.zip_sha256
    with zipfile.ZipFile(example_zips.mlp_zip) as zf:
        import hashlib

        assert (
            by_kind[("weights", "mlp/katakana_model.pickle")]
            == hashlib.sha256(zf.read("mlp/katakana_model.pickle")).hexdigest()
        )
        # The example's own entry is the course's code (a template): it never counts as shared.
        assert ("code", "mlp/submit_katakana.py") not in by_kind
    shown = json.dumps(report.to_json())
    assert "predictions" not in shown and "file_hashes" not in shown
    assert kept.hex()[:64] not in shown
