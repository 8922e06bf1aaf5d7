import math

import numpy as np
import pytest

from scorer.errors import ErrorCode, ScoringError
from scorer.metrics import compute_metrics, labels_to_ids, validate_predictions


def _code(excinfo: pytest.ExceptionInfo[ScoringError]) -> ErrorCode:
    return excinfo.value.code


def test_ids_of_any_numeric_dtype_are_accepted() -> None:
    for raw in (np.array([0, 14, 3]), np.array([0.0, 14.0, 3.0]), np.array([[0], [14], [3]], dtype=np.uint8)):
        assert validate_predictions(raw, 3).ids.tolist() == [0, 14, 3]


def test_scores_take_the_argmax_and_probabilities_give_a_loss() -> None:
    logits = np.array([[0.0] * 15, [0.0] * 15])
    logits[0, 4] = 3.0
    logits[1, 9] = -1.0  # argmax of a row of zeros and one negative is class 0
    p = validate_predictions(logits, 2)
    assert p.ids.tolist() == [4, 0]
    assert p.probabilities is None  # raw scores: no loss
    probs = np.full((2, 15), 1 / 15)
    assert validate_predictions(probs, 2).probabilities is not None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (np.array([0, 1]), ErrorCode.PREDICTION_COUNT),
        (np.zeros((3, 10)), ErrorCode.PREDICTION_SHAPE),
        (np.zeros((3, 15, 1)), ErrorCode.PREDICTION_SHAPE),
        (np.array(["a", "b", "c"]), ErrorCode.PREDICTION_SHAPE),
        (np.array([0, 15, 1]), ErrorCode.CLASS_OUT_OF_RANGE),
        (np.array([0, -1, 1]), ErrorCode.CLASS_OUT_OF_RANGE),
        (np.array([0, 2.5, 1]), ErrorCode.CLASS_OUT_OF_RANGE),
        (np.array([0, np.nan, 1]), ErrorCode.NON_FINITE),
        (np.array([[np.inf] + [0.0] * 14] * 3), ErrorCode.NON_FINITE),
    ],
)
def test_bad_predictions_get_the_code_the_trainee_can_act_on(raw: np.ndarray, code: ErrorCode) -> None:
    with pytest.raises(ScoringError) as excinfo:
        validate_predictions(raw, 3)
    assert _code(excinfo) is code
    assert excinfo.value.message("ja") and excinfo.value.message("en")
    assert "?" not in excinfo.value.message("en").replace("?)", "")  # every parameter was filled


def test_labels_one_hot_or_ids() -> None:
    one_hot = np.eye(15)[[3, 0, 14]]
    assert labels_to_ids(one_hot).tolist() == [3, 0, 14]
    assert labels_to_ids(np.array([3, 0, 14])).tolist() == [3, 0, 14]
    with pytest.raises(ValueError):
        labels_to_ids(np.array([3, 15]))


def test_metrics_match_an_independent_loop() -> None:
    rng = np.random.default_rng(7)
    n = 997
    true = rng.integers(0, 15, n)
    logits = rng.normal(size=(n, 15)) + 2.5 * np.eye(15)[true]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics = compute_metrics(validate_predictions(probs, n), true)

    pred = [max(range(15), key=lambda k, row=row: row[k]) for row in probs.tolist()]
    correct = sum(int(p == t) for p, t in zip(pred, true.tolist(), strict=True))
    assert metrics.correct == correct and metrics.total == n
    assert metrics.accuracy == correct / n
    confusion = [[0] * 15 for _ in range(15)]
    for p, t in zip(pred, true.tolist(), strict=True):
        confusion[t][p] += 1
    assert metrics.confusion == confusion
    per_class = [confusion[k][k] / sum(confusion[k]) for k in range(15)]
    assert [c.accuracy for c in metrics.per_class] == per_class
    assert metrics.macro_accuracy == pytest.approx(sum(per_class) / 15)
    expected_loss = -sum(math.log(probs[i, true[i]] + 1e-7) for i in range(n)) / n
    assert metrics.loss == pytest.approx(expected_loss, rel=1e-12)
    assert [c.label for c in metrics.per_class][:3] == ["ア", "イ", "ウ"]
