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
    TEMPLATES,
    code_hash,
    compare,
    file_hashes,
    normalised_code,
    predictions_from_bytes,
    predictions_to_bytes,
    strongest_per_group,
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


def test_strongest_pair_per_trainee_prefers_agreement_then_evidence_and_needs_enough_mistakes() -> None:
    labels = np.zeros(100, dtype=np.int64)
    new = np.ones(100, dtype=np.int64)  # wrong everywhere, always class 1
    weak_copy = np.zeros(100, dtype=np.int64)
    weak_copy[:5] = 1  # 5 shared mistakes, all alike: rate 1.0 on thin evidence
    half = np.where(np.arange(100) % 2 == 0, 1, 2)  # 100 shared mistakes, half alike
    full = np.ones(100, dtype=np.int64)  # 100 shared mistakes, all alike
    others = np.stack([weak_copy, half, full, half])
    groups = np.array([7, 7, 8, 8])
    result = compare(new, others, labels)
    best = strongest_per_group(groups, result, min_both_wrong=20)
    assert best == {7: 1, 8: 2}  # trainee 7: the 50 % pair on 100 mistakes beats 100 % on 5
    assert strongest_per_group(groups, result, min_both_wrong=1)[7] == 0
    assert strongest_per_group(np.zeros(0, dtype=np.int64), compare(new, others[:0], labels), 20) == {}


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
        assert by_kind[("code", "mlp/submit_katakana.py")] == code_hash(zf.read("mlp/submit_katakana.py"))
    shown = json.dumps(report.to_json())
    assert "predictions" not in shown and "file_hashes" not in shown
    assert kept.hex()[:64] not in shown
