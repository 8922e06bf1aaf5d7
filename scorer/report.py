"""What a check or a scoring run produced, in the shape the command line, the worker and the site use."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from scorer.errors import ScoringError
from scorer.metrics import Metrics
from scorer.notices import Notice
from scorer.runtime_choice import FrameworkImport
from scorer.similarity import FileHash, predictions_to_bytes
from scorer.smoke import SmokeAccuracy

Status = Literal["succeeded", "failed"]


@dataclass
class RunFacts:
    """How the sandboxed run went, whatever its outcome."""

    log: str = ""
    duration_s: float = 0.0
    sandbox_seconds: float = 0.0
    predict_seconds: float | None = None
    peak_memory_mb: float | None = None
    isolation: str = ""
    run_id: str = ""


@dataclass
class ScoreReport:
    status: Status
    error: ScoringError | None
    metrics: Metrics | None
    facts: RunFacts
    runtime: dict[str, str]
    limits: dict[str, Any]
    notices: list[Notice] = field(default_factory=list)
    entry: str | None = None
    zip_sha256: str = ""
    # The run's output for instructors and admins only (a larger bound than ``facts.log``, which is
    # what the trainee sees): never in to_json, which the command line prints for the trainee.
    staff_log: str = ""
    # For the instructors' similarity view only: deliberately not in to_json(), which trainees see.
    predictions: npt.NDArray[np.int64] | None = None  # class ids on the hidden set, when scored
    file_hashes: list[FileHash] = field(default_factory=list)

    @property
    def prediction_bytes(self) -> bytes | None:
        """The predicted class ids, one byte each (14,500 bytes for the hidden set)."""
        return predictions_to_bytes(self.predictions) if self.predictions is not None else None

    @property
    def accuracy(self) -> float | None:
        return self.metrics.accuracy if self.metrics else None

    @property
    def correct(self) -> int | None:
        return self.metrics.correct if self.metrics else None

    @property
    def total(self) -> int | None:
        return self.metrics.total if self.metrics else None

    @property
    def macro_accuracy(self) -> float | None:
        return self.metrics.macro_accuracy if self.metrics else None

    @property
    def loss(self) -> float | None:
        return self.metrics.loss if self.metrics else None

    @property
    def per_class(self) -> list[dict[str, Any]] | None:
        return [c.to_json() for c in self.metrics.per_class] if self.metrics else None

    @property
    def confusion(self) -> list[list[int]] | None:
        return self.metrics.confusion if self.metrics else None

    @property
    def log(self) -> str:
        return self.facts.log

    @property
    def duration_s(self) -> float:
        return self.facts.duration_s

    @property
    def peak_memory_mb(self) -> float | None:
        return self.facts.peak_memory_mb

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
            "macro_accuracy": self.macro_accuracy,
            "loss": self.loss,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "error": self.error.to_json() if self.error else None,
            "log": self.facts.log,
            "duration_s": round(self.facts.duration_s, 3),
            "sandbox_seconds": round(self.facts.sandbox_seconds, 3),
            "predict_seconds": self.facts.predict_seconds,
            "peak_memory_mb": self.facts.peak_memory_mb,
            "isolation": self.facts.isolation,
            "run_id": self.facts.run_id,
            "runtime": self.runtime,
            "limits": self.limits,
            "notices": [n.to_json() for n in self.notices],
            "entry": self.entry,
            "zip_sha256": self.zip_sha256,
        }


@dataclass
class CheckReport:
    """The pre-flight verdict: ``ok`` means the zip may spend an upload slot."""

    ok: bool
    stage: Literal["static", "smoke"]
    error: ScoringError | None
    facts: RunFacts
    notices: list[Notice] = field(default_factory=list)
    entry: str | None = None
    zip_sha256: str = ""
    smoke: SmokeAccuracy | None = None  # only when the smoke images' labels were known (public set)
    runtime: str = ""  # the runtime it ran in ("numpy", "tensorflow"); "" when refused before choosing
    framework_import: FrameworkImport | None = None  # its first import of TensorFlow or Keras, if any

    @property
    def log(self) -> str:
        return self.facts.log

    @property
    def smoke_accuracy(self) -> float | None:
        return self.smoke.accuracy if self.smoke is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "stage": self.stage,
            "smoke": self.smoke.to_json() if self.smoke is not None else None,
            "runtime": self.runtime,
            "framework_import": dataclasses.asdict(self.framework_import) if self.framework_import else None,
            "error": self.error.to_json() if self.error else None,
            "log": self.facts.log,
            "duration_s": round(self.facts.duration_s, 3),
            "isolation": self.facts.isolation,
            "notices": [n.to_json() for n in self.notices],
            "entry": self.entry,
            "zip_sha256": self.zip_sha256,
        }


# Either report: the run skeleton (scorer/pipeline.py) and ``disclose`` handle both alike.
Report = TypeVar("Report", ScoreReport, CheckReport)
