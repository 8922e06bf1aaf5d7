"""Check and score a submission: zip intake → static check → sandboxed harness → validation → verdict.

One skeleton, :func:`run_submission`, runs trainee code for the pre-flight (:func:`check_submission`)
and for scoring (:func:`score_submission`) alike. A :class:`Purpose` holds all they do differently:
the limits, the images and their labels, what the parent makes of validated predictions (the
metrics, or the smoke accuracy) and what the report may reveal. So one rule decides who is to blame,
for both (:func:`_blamed`):

- Until trainee code may have run, a failure the parent sees is the service's (no sandbox or runtime,
  a missing zip, a broken test set, a harness that did not start): ``Blame.SERVER``, and the service
  gives the upload back. A refusal of the zip's contents (intake, static check) is the submission's.
- From the harness's ``importing`` line on (scorer/verdict.py), everything is the submission's: how
  the run ended, and any exception of ours while handling its result, because the trainee's code
  chose what reached us and a server fault would give the upload back (a free run on the hidden set).

Which runtime runs the code (NumPy, or TensorFlow + Keras) is decided after intake and the static
checks, before anything runs, from what the code imports (scorer/runtime_choice.py); the purpose's
:class:`RuntimeChoice` says what the cohort allows. So the zip is extracted into a fresh run folder
first, and the sandbox of the chosen runtime (a warm one adopts that folder) is picked after.

The labels never enter the sandbox: the run directory that the sandbox sees holds the extracted
submission, the images and the harness, nothing else; the parent compares the labels with the
predictions it received only after the sandbox has ended.

Every way this can go wrong ends in a report with a stable error code, never an exception, except
for programming errors in this file. The report leaves through ``disclose`` (scorer/disclosure.py),
which makes every string in it storable and bounds what a hidden-set run reveals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic

import numpy as np

from scorer.bounded import StaticLimits, run_bounded
from scorer.disclosure import Disclosure, disclose
from scorer.errors import Blame, ErrorCode, ScoringError
from scorer.images import Images, Inputs, hidden_set, smoke_sample
from scorer.intake import ExtractedSubmission, IntakeLimits, extract_submission
from scorer.metrics import IntArray, Predictions, compute_metrics, validate_predictions
from scorer.notebook import notebook_to_source
from scorer.notices import Notice
from scorer.report import CheckReport, Report, RunFacts, ScoreReport
from scorer.runtime import Runtime, Runtimes, RuntimeUnavailable
from scorer.runtime_choice import FrameworkImport, RuntimeChoice, framework_imports
from scorer.sandbox import SandboxConfig, SandboxUnavailable
from scorer.sandbox.types import Limits, SandboxOutcome
from scorer.similarity import FileHash, file_hashes
from scorer.smoke import smoke_accuracy
from scorer.static_check import TrainingCall, check_entry_source, check_source_size, training_call
from scorer.verdict import HarnessChannel, classify_run, parse_channel
from scorer.warm import STARTUP_SECONDS, HarnessBox, HarnessSpec, WarmSlot, new_run_dir

log = logging.getLogger(__name__)

RUNTIME_MARK = "<runtime>"


@dataclass(frozen=True)
class ScoringConfig:
    """The engine's configuration, as a value (the engine reads no environment).

    ``runtime`` is the interpreter runs of this configuration use: the NumPy reference, and for each
    run the one its code needs out of :attr:`runtimes` (:meth:`using`)."""

    runtime: Runtime
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    limits: Limits = field(default_factory=Limits)
    smoke_limits: Limits = field(default_factory=lambda: Limits(wall_seconds=60.0))
    intake: IntakeLimits = field(default_factory=IntakeLimits)
    static: StaticLimits = field(default_factory=StaticLimits)  # reading the zip and entry (scorer.bounded)
    chunk_size: int = 500
    work_root: Path | None = None  # parent of the per-run folders; must be reachable by the sandbox uid
    # What a run on the hidden set shows of its trainee-controlled output (see scorer/disclosure.py).
    disclosure: Disclosure = field(default_factory=Disclosure)
    # The TensorFlow + Keras runtime, when installed (None: Keras submissions are refused).
    tensorflow_runtime: Runtime | None = None
    # How long a harness may take to start (its runtime's import), off the run's clock (scorer.warm).
    startup_seconds: float = STARTUP_SECONDS

    @property
    def runtimes(self) -> Runtimes:
        return Runtimes(self.runtime, self.tensorflow_runtime)

    def using(self, runtime: Runtime) -> ScoringConfig:
        """This configuration with ``runtime`` running the code."""
        return self if runtime == self.runtime else dataclasses.replace(self, runtime=runtime)

    def limits_json(self, limits: Limits) -> dict[str, Any]:
        return {**dataclasses.asdict(limits), "chunk_size": self.chunk_size}

    def harness_spec(self, limits: Limits, images: Images) -> HarnessSpec:
        """What a run's sandbox is started with under this configuration (to pre-warm one too)."""
        return HarnessSpec(self.runtime, self.sandbox, limits, images, self.work_root, self.startup_seconds)


@dataclass
class Prepared:
    """A submission after intake and the static checks, ready to be handed to the harness."""

    extracted: ExtractedSubmission
    job: dict[str, object]  # what the harness is handed on stdin: which entry, where
    notices: list[Notice]
    entry_display: str
    frameworks: list[FrameworkImport] = field(default_factory=list)  # imports that need TensorFlow
    training: TrainingCall | None = None  # a model trained as the entry loads (a notebook's cells)


@dataclass(frozen=True)
class Purpose(Generic[Report]):
    """What a run of trainee code is for: everything the pre-flight and scoring do differently.

    The skeleton calls, in order: ``new_report`` (a failed report: what stays if nothing succeeds),
    ``inputs`` (before anything runs: a ScoringError here keeps its own blame, anything else is the
    service's), ``runtime.choose`` (after intake and the static checks: which runtime runs the code,
    or a refusal), ``prepared`` (what the purpose records of the submission and its runtime),
    ``judge`` (with the validated predictions and the class ids the parent holds: the verdict) and
    finally ``disclose`` with ``disclosure`` (None: a run on public images, shown whole).
    """

    name: str  # in the logs: "scoring", "pre-flight"
    limits: Limits
    inputs: Callable[[], Inputs]
    runtime: RuntimeChoice
    new_report: Callable[[], Report]
    prepared: Callable[[Report, Prepared, Path, Runtime], None]
    judge: Callable[[Report, Predictions, IntArray | None], None]
    disclosure: Disclosure | None


@dataclass
class _HarnessRun:
    run_id: str  # also in the sandbox's environment, so a test can prove no process of the run survives
    outcome: SandboxOutcome
    channel: HarnessChannel

    @property
    def payload(self) -> bytes | None:
        return self.channel.payload

    @property
    def trainee_ran(self) -> bool:
        """Whether trainee code may have run: from then on, nothing that goes wrong is the server's."""
        return self.channel.importing


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _zip_sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"submission file unreadable: {exc}") from exc


def _write_readable(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)


def _prepare(zip_path: Path, run_dir: Path, config: ScoringConfig) -> Prepared:
    """Extract and statically check the entry; raises ScoringError before any trainee code runs.

    Runs in a bounded child (see _staged): everything here parses what the trainee sent. ``run_dir``
    is a run folder (scorer.warm.new_run_dir): what is written to its ``sub`` and ``input`` folders
    is what the harness will be sent."""
    extracted = extract_submission(zip_path, run_dir / "sub", config.intake)
    notices = list(extracted.notices)
    rel_entry = extracted.entry.relative_to(extracted.root).as_posix()
    rel_dir = extracted.entry_dir.relative_to(extracted.root).as_posix()
    display = extracted.entry.name
    if extracted.entry_kind == "py":  # refused before it is read (a notebook's code is measured once made)
        check_source_size(extracted.entry.stat().st_size, display)
    raw = extracted.entry.read_bytes()
    if extracted.entry_kind == "ipynb":
        nb = notebook_to_source(raw, display)
        notices += nb.notices
        notices += check_entry_source(nb.source, display, nb.locate)
        frameworks = framework_imports(nb.source, display, extracted.entry_dir, nb.locate)
        training = training_call(nb.source, nb.locate)
        _write_readable(run_dir / "input" / "submit_katakana.py", nb.source.encode("utf-8"))
        _write_readable(run_dir / "input" / "cellmap.json", json.dumps(nb.line_map).encode("utf-8"))
        source = ["input", "submit_katakana.py"]
        cellmap: str | None = "cellmap.json"
    else:
        # Bytes, so coding cookies and BOMs are honoured exactly as the import inside will.
        notices += check_entry_source(raw, display, None)
        frameworks = framework_imports(raw, display, extracted.entry_dir)
        training = training_call(raw)
        source = ["work", rel_entry]
        cellmap = None
    # Paths relative to the folders the harness was started with (its --work and --input): the
    # unsandboxed fallback maps those to host folders, and can only rewrite the command line.
    job: dict[str, object] = {
        "source": source,
        "entry": rel_entry,
        "workdir": "" if rel_dir == "." else rel_dir,
        "cellmap": cellmap,
        "chunk": config.chunk_size,
    }
    return Prepared(extracted, job, notices, rel_entry, frameworks, training)


def _staged(zip_path: Path, config: ScoringConfig) -> tuple[Path, Prepared]:
    """A fresh run folder with the submission extracted and checked (see _prepare, run in a child
    under ``config.static``: scorer.bounded), before the runtime and so the sandbox are chosen;
    removed again if that fails."""
    staging = new_run_dir(config.work_root)
    try:
        return staging, run_bounded(_prepare, zip_path, staging, config, limits=config.static)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _file_hashes(prepared: Prepared, run_dir: Path, zip_sha256: str) -> list[FileHash]:
    """Digests for the similarity view; a failure here must never cost the trainee a result."""
    try:
        converted = run_dir / "input" / "submit_katakana.py"  # a notebook's code cells, as run
        code = converted.read_bytes() if converted.exists() else prepared.extracted.entry.read_bytes()
        return file_hashes(zip_sha256, prepared.extracted.root, code, prepared.entry_display)
    except OSError as exc:
        log.warning("file digests for the similarity view failed: %s", exc)
        return [FileHash("zip", "", zip_sha256)] if zip_sha256 else []


def _run_harness(prepared: Prepared, box: HarnessBox) -> _HarnessRun:
    log.info("sandbox run %s: %s (%s)", box.run_id, prepared.entry_display, "warm" if box.started else "cold")
    outcome = box.run(prepared.job)
    log.info("sandbox run %s ended: %s in %.2f s", box.run_id, outcome.termination, outcome.duration_s)
    return _HarnessRun(box.run_id, outcome, parse_channel(outcome.result))


def _done_with(box: HarnessBox | None, warm: WarmSlot | None) -> None:
    """A slot cleans the used box up later, off the result's critical path; else now."""
    if box is None:
        return
    if warm is not None:
        warm.retire(box)
    else:
        box.close()


def _box(spec: HarnessSpec, warm: WarmSlot | None, staging: Path) -> HarnessBox:
    """The slot's warm sandbox when it fits this run (it adopts the staged folder's contents), else a
    cold one over the staged folder (started at the hand-over)."""
    taken = warm.take(spec) if warm is not None else None
    if taken is None:
        return HarnessBox(spec, run_dir=staging)
    try:
        taken.adopt(staging)
    except BaseException:
        taken.close()
        raise
    return taken


def _classify(run: _HarnessRun, spec: HarnessSpec, prepared: Prepared) -> ScoringError | None:
    """Decide what the run means (scorer/verdict.py). None: predictions arrived (still to be validated)."""
    error = classify_run(run.outcome, run.channel, spec.limits)
    if error is None or error.code.blame is Blame.SERVER:
        return error
    if error.code is ErrorCode.TIME_LIMIT and prepared.training is not None:
        training = prepared.training
        params = {"call": training.call, "where": training.where, "where_ja": training.where_ja}
        error = ScoringError(ErrorCode.TRAINING_TIME_LIMIT, {**error.params, **params}, error.detail)
    if error.code is ErrorCode.MODULE_NOT_FOUND:
        try:
            error.params["offered"] = spec.runtime.info().offered_libraries()
        except RuntimeUnavailable:  # the list is a courtesy: it must not turn the trainee's error into ours
            error.params["offered"] = "?"
    error.params.setdefault("file", prepared.extracted.entry.name)
    return error


def _neutral_log(text: str, runtime: Runtime, run_dir: Path) -> str:
    """Host paths out of the log: the runtime's folders and the run folder get neutral names."""
    for bind in runtime.binds():
        text = text.replace(bind.dest, RUNTIME_MARK)
    return text.replace(str(run_dir), "")


def _facts(run: _HarnessRun, started: float, box: HarnessBox, error: ScoringError | None) -> RunFacts:
    outcome = run.outcome
    log_text = outcome.log
    if error is not None and error.detail and error.code.blame is Blame.SUBMISSION:
        log_text = f"{log_text.rstrip()}\n{error.detail}".lstrip("\n")
    channel = run.channel
    if channel.peak_rss_kib is not None:
        peak_bytes = min(channel.peak_rss_kib * 1024, outcome.peak_memory_bytes or channel.peak_rss_kib * 1024)
    else:
        peak_bytes = outcome.peak_memory_bytes  # killed before reporting: an upper bound
    return RunFacts(
        log=_neutral_log(log_text, box.spec.runtime, box.run_dir),
        duration_s=time.monotonic() - started,
        sandbox_seconds=outcome.duration_s,
        predict_seconds=channel.predict_seconds,
        peak_memory_mb=round(peak_bytes / 1024**2, 1),
        isolation=outcome.isolation.value,
        run_id=run.run_id,
    )


def _decode_predictions(payload: bytes) -> np.ndarray:
    try:
        predictions: np.ndarray = np.load(io.BytesIO(payload), allow_pickle=False)
        return predictions
    except Exception as exc:  # whatever the trainee's bytes make np.load raise
        raise ScoringError(ErrorCode.PREDICTION_SHAPE, {"got": "unreadable predictions"}) from exc


def _validated(payload: bytes, n_images: int) -> Predictions:
    """The predictions, checked; whatever the trainee's bytes do to the checks, the failure is theirs."""
    try:
        return validate_predictions(_decode_predictions(payload), n_images)
    except ScoringError:
        raise
    except Exception as exc:
        raise ScoringError(ErrorCode.PREDICTION_SHAPE, {"got": "unreadable predictions"}) from exc


def _blamed(exc: Exception, run: _HarnessRun | None) -> ScoringError:
    """The error a run ends with, by the one rule of the module docstring.

    Before trainee code may have run, a ScoringError keeps its blame and anything unforeseen is a
    bug or an outage of ours. After, nothing is the server's: an unforeseen failure (the log above,
    for admins, has the exception) and even a server-blamed code become HARNESS_DISRUPTED.
    """
    trainee_ran = run is not None and run.trainee_ran
    if isinstance(exc, ScoringError) and not (trainee_ran and exc.code.blame is Blame.SERVER):
        return exc
    if trainee_ran:
        return ScoringError(ErrorCode.HARNESS_DISRUPTED, {"reason": "the run's result could not be processed"})
    if isinstance(exc, SandboxUnavailable | RuntimeUnavailable):
        return ScoringError(ErrorCode.SANDBOX_UNAVAILABLE, detail=str(exc))
    return ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"{type(exc).__name__}: {exc}")


def run_submission(
    zip_path: Path, config: ScoringConfig, purpose: Purpose[Report], warm: WarmSlot | None = None
) -> Report:
    """Run one zip's trainee code for ``purpose``. Never raises for anything the zip or sandbox does.

    With ``warm``, the run takes the slot's pre-warmed sandbox of its runtime when it fits (see
    scorer.warm); the caller warms the next ones afterwards, from the same thread.
    """
    started = time.monotonic()
    report = purpose.new_report()
    box: HarnessBox | None = None
    staging: Path | None = None
    run: _HarnessRun | None = None
    try:
        try:
            report.zip_sha256 = _zip_sha256(zip_path)
            inputs = purpose.inputs()
            staging, prepared = _staged(zip_path, config)
            report.notices, report.entry = prepared.notices, prepared.entry_display
            runtime = purpose.runtime.choose(prepared.frameworks, config.runtimes)
            purpose.prepared(report, prepared, staging, runtime)
            spec = config.using(runtime).harness_spec(purpose.limits, inputs.images)
            box, staging = _box(spec, warm, staging), None
            run = _run_harness(prepared, box)
            error = _classify(run, box.spec, prepared)
            report.facts = _facts(run, started, box, error)
            if error is not None:
                raise error
            assert run.payload is not None
            purpose.judge(report, _validated(run.payload, inputs.count), inputs.class_ids)
        except ScoringError as exc:
            report.error = _blamed(exc, run)
        except Exception as exc:
            log.exception("%s of %s failed internally", purpose.name, zip_path)
            report.error = _blamed(exc, run)
    finally:
        _done_with(box, warm)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    report.facts.duration_s = time.monotonic() - started
    return disclose(report, purpose.disclosure)


def _runtime_versions(runtime: Runtime) -> dict[str, str]:
    """The run's runtime as the report keeps it: its name ("numpy", "tensorflow") and versions."""
    try:
        return {"name": runtime.name.value, **runtime.info().versions()}
    except RuntimeUnavailable:
        return {"name": runtime.name.value}


def scoring_purpose(
    config: ScoringConfig, test_data: Path, test_labels: Path, runtime: RuntimeChoice | None = None
) -> Purpose[ScoreReport]:
    """Scoring on the labelled hidden set: the metrics, and only an excerpt of the output.

    The runtime is the one the code needs among those installed (the cohort's choice was applied by
    the pre-flight that accepted the upload: a runtime missing now is the service's fault)."""

    def new_report() -> ScoreReport:
        return ScoreReport(
            status="failed",
            error=None,
            metrics=None,
            facts=RunFacts(),
            runtime={},  # the chosen runtime's, once the code has been read (prepared)
            limits=config.limits_json(config.limits),
        )

    def prepared(report: ScoreReport, prepared: Prepared, run_dir: Path, runtime: Runtime) -> None:
        report.file_hashes = _file_hashes(prepared, run_dir, report.zip_sha256)
        report.runtime = _runtime_versions(runtime)

    return Purpose(
        name="scoring",
        limits=config.limits,
        # The set is checked before anything runs: a broken one is the service's fault, not a run's.
        inputs=lambda: hidden_set(test_data, test_labels),
        runtime=runtime or RuntimeChoice(),
        new_report=new_report,
        prepared=prepared,
        judge=_score,
        disclosure=config.disclosure,
    )


def _score(report: ScoreReport, predictions: Predictions, class_ids: IntArray | None) -> None:
    assert class_ids is not None  # the hidden set is always labelled
    report.metrics = compute_metrics(predictions, class_ids)
    report.predictions = predictions.ids
    report.status = "succeeded"


def check_purpose(
    config: ScoringConfig,
    sample_data: Path | None = None,
    sample_labels: Path | None = None,
    runtime: RuntimeChoice | None = None,
) -> Purpose[CheckReport]:
    """The pre-flight's smoke run on a few public images: accepted or not, with the smoke accuracy
    when their labels are known; its log is shown whole (nothing hidden was in its memory).

    ``runtime``: by default every installed runtime is allowed; a code that needs one that is not
    (by the cohort, or not installed here) is refused before anything runs, nothing spent."""

    def prepared(report: CheckReport, prepared: Prepared, run_dir: Path, runtime: Runtime) -> None:
        report.stage = "smoke"
        report.runtime = runtime.name.value
        report.framework_import = prepared.frameworks[0] if prepared.frameworks else None

    return Purpose(
        name="pre-flight",
        limits=config.smoke_limits,
        inputs=lambda: smoke_sample(sample_data, sample_labels),
        runtime=runtime or RuntimeChoice(refuse_missing=True),
        new_report=lambda: CheckReport(ok=False, stage="static", error=None, facts=RunFacts()),
        prepared=prepared,
        judge=_accept,
        disclosure=None,
    )


def _accept(report: CheckReport, predictions: Predictions, class_ids: IntArray | None) -> None:
    if class_ids is not None:
        report.smoke = smoke_accuracy(predictions, class_ids)
    report.ok = True


def scoring_spec(config: ScoringConfig, test_data: Path) -> HarnessSpec:
    """What a hidden-set run's sandbox in ``config.runtime`` is started with (to pre-warm one:
    WarmSlot.warm)."""
    return config.harness_spec(config.limits, Images.from_file(test_data))


def scoring_specs(config: ScoringConfig, test_data: Path) -> list[HarnessSpec]:
    """:func:`scoring_spec` for every installed runtime: what a worker keeps warm, one of each."""
    return [scoring_spec(config.using(runtime), test_data) for runtime in config.runtimes.installed()]


def check_spec(
    config: ScoringConfig, sample_data: Path | None = None, sample_labels: Path | None = None
) -> HarnessSpec:
    """What a pre-flight's sandbox in ``config.runtime`` is started with (to pre-warm one:
    WarmSlot.warm)."""
    return config.harness_spec(config.smoke_limits, smoke_sample(sample_data, sample_labels).images)


def check_specs(
    config: ScoringConfig, sample_data: Path | None = None, sample_labels: Path | None = None
) -> list[HarnessSpec]:
    """:func:`check_spec` for every installed runtime: what a pre-flight worker keeps warm."""
    return [check_spec(config.using(r), sample_data, sample_labels) for r in config.runtimes.installed()]


def score_submission(
    zip_path: Path,
    *,
    test_data: Path,
    test_labels: Path,
    config: ScoringConfig,
    warm: WarmSlot | None = None,
    runtime: RuntimeChoice | None = None,
) -> ScoreReport:
    """Score one zip against a labelled test set (see :func:`run_submission`)."""
    return run_submission(zip_path, config, scoring_purpose(config, test_data, test_labels, runtime), warm)


def check_submission(
    zip_path: Path,
    *,
    config: ScoringConfig,
    sample_data: Path | None = None,
    sample_labels: Path | None = None,
    warm: WarmSlot | None = None,
    runtime: RuntimeChoice | None = None,
) -> CheckReport:
    """Pre-flight: static checks, then a short sandboxed run on a few public images.

    With ``sample_labels`` (the public training set's, given with ``sample_data``), the parent also
    scores the smoke run after it has ended (``report.smoke``); the labels never enter the sandbox.
    """
    return run_submission(zip_path, config, check_purpose(config, sample_data, sample_labels, runtime), warm)
