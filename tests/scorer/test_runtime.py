"""How a report's recorded runtime is named on pages, in emails and in logs."""

from __future__ import annotations

from scorer.runtime import runtime_summary

TENSORFLOW = {
    "name": "tensorflow",
    "python": "3.11.2",
    "numpy": "2.3.5",
    "scipy": "1.16.3",
    "tensorflow": "2.21.0",
    "keras": "3.15.1",
}


def test_the_tensorflow_runtime_is_named_with_its_framework_versions() -> None:
    assert (
        runtime_summary(TENSORFLOW)
        == "TensorFlow + Keras (Python 3.11.2, TensorFlow 2.21.0, Keras 3.15.1, NumPy 2.3.5)"
    )


def test_the_complete_summary_adds_every_other_library() -> None:
    assert runtime_summary(TENSORFLOW, complete=True).endswith("NumPy 2.3.5, scipy 1.16.3)")


def test_a_record_from_before_there_were_two_runtimes_is_numpys() -> None:
    assert runtime_summary({"python": "3.11.2", "numpy": "2.3.5"}) == "NumPy (Python 3.11.2, NumPy 2.3.5)"
    assert runtime_summary({"name": "numpy"}) == "NumPy"


def test_nothing_recorded_names_nothing_and_an_unknown_name_is_shown_as_it_is() -> None:
    assert runtime_summary(None) == "" and runtime_summary({}) == ""
    assert runtime_summary({"name": "jax", "python": "3.12.1"}) == "jax (Python 3.12.1)"
