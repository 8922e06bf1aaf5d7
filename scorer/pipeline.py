"""Check and score a submission: zip intake → static check → sandboxed harness → validation → metrics.

The labels never enter the sandbox: the run directory that the sandbox sees holds the extracted
submission, the images and the harness, nothing else; the parent reads the labels only after the
sandbox has ended, to compare them with the predictions it received.

Every way this can go wrong ends in a report with a stable error code, never an exception, except
for programming errors in this file. Faults of the service (no sandbox, a corrupt test set, a
harness that did not start) carry codes with ``Blame.SERVER`` so the service gives the slot back.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scorer.classes import IMAGE_SHAPE
from scorer.disclosure import Disclosure, cap_params, excerpt, params_bytes
from scorer.errors import Blame, ErrorCode, ScoringError
from scorer.intake import ExtractedSubmission, IntakeLimits, extract_submission
from scorer.metrics import Predictions, compute_metrics, labels_to_ids, validate_predictions
from scorer.notebook import notebook_to_source
from scorer.notices import Notice
from scorer.report import CheckReport, RunFacts, ScoreReport
from scorer.runtime import Runtime, RuntimeName, Runtimes, RuntimeUnavailable
from scorer.runtime_choice import FrameworkImport, choose_runtime, framework_imports
from scorer.sandbox import SandboxConfig, SandboxUnavailable
from scorer.sandbox.types import Limits, SandboxOutcome
from scorer.similarity import FileHash, file_hashes
from scorer.static_check import TrainingCall, check_entry_source, training_call
from scorer.verdict import HarnessChannel, classify_run, parse_channel
from scorer.warm import HarnessBox, HarnessSpec, Images, WarmSlot, new_run_dir

log = logging.getLogger(__name__)

SMOKE_PER_CLASS = 2
RUNTIME_MARK = "<runtime>"


@dataclass(frozen=True)
class ScoringConfig:
    """``runtime`` is the one a run uses: the NumPy reference here, and for each run the one its
    code needs (``dataclasses.replace``), out of ``runtimes``."""

    runtime: Runtime
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    limits: Limits = field(default_factory=Limits)
    smoke_limits: Limits = field(default_factory=lambda: Limits(wall_seconds=60.0))
    intake: IntakeLimits = field(default_factory=IntakeLimits)
    chunk_size: int = 500
    work_root: Path | None = None  # parent of the per-run folders; must be reachable by the sandbox uid
    # What a run on the hidden set shows of its trainee-controlled output (see scorer/disclosure.py).
    disclosure: Disclosure = field(default_factory=Disclosure)

    # The TensorFlow + Keras runtime, when installed (None: Keras submissions are refused).
    tensorflow_runtime: Runtime | None = None

    def limits_json(self, limits: Limits) -> dict[str, Any]:
        return {**dataclasses.asdict(limits), "chunk_size": self.chunk_size}

    @property
    def runtimes(self) -> Runtimes:
        return Runtimes(self.runtime, self.tensorflow_runtime)

    def using(self, runtime: Runtime) -> ScoringConfig:
        return self if runtime == self.runtime else dataclasses.replace(self, runtime=runtime)


@dataclass
class _Prepared:
    extracted: ExtractedSubmission
    job: dict[str, object]  # what the harness is handed on stdin: which entry, where
    notices: list[Notice]
    entry_display: str
    frameworks: list[FrameworkImport] = field(default_factory=list)  # imports that need TensorFlow
    training: TrainingCall | None = None  # a model trained as the entry loads (a notebook's cells)


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


def _write_readable(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)


def _prepare(zip_path: Path, run_dir: Path, config: ScoringConfig) -> _Prepared:
    """Extract and statically check the entry; raises ScoringError before any trainee code runs.

    ``run_dir``'s ``sub`` and ``input`` folders (made by scorer.warm) may already be bound into a
    waiting sandbox: what is written there is what the harness will see."""
    extracted = extract_submission(zip_path, run_dir / "sub", config.intake)
    notices = list(extracted.notices)
    rel_entry = extracted.entry.relative_to(extracted.root).as_posix()
    rel_dir = extracted.entry_dir.relative_to(extracted.root).as_posix()
    display = extracted.entry.name
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
    return _Prepared(extracted, job, notices, rel_entry, frameworks, training)


def _staged(zip_path: Path, config: ScoringConfig) -> tuple[Path, _Prepared]:
    """A fresh run folder with the submission extracted and checked (see _prepare); removed again
    if that fails."""
    staging = new_run_dir(config)
    try:
        return staging, _prepare(zip_path, staging, config)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _runtime_for(
    prepared: _Prepared, config: ScoringConfig, allowed: Collection[RuntimeName] | None, *, refuse_missing: bool
) -> ScoringConfig:
    """The configuration of the runtime this submission's code needs (scorer/runtime_choice.py)."""
    runtime = choose_runtime(prepared.frameworks, config.runtimes, allowed=allowed, refuse_missing=refuse_missing)
    return config.using(runtime)


def _file_hashes(prepared: _Prepared, run_dir: Path, zip_sha256: str) -> list[FileHash]:
    """Digests for the similarity view; a failure here must never cost the trainee a result."""
    try:
        converted = run_dir / "input" / "submit_katakana.py"  # a notebook's code cells, as run
        code = converted.read_bytes() if converted.exists() else prepared.extracted.entry.read_bytes()
        return file_hashes(zip_sha256, prepared.extracted.root, code, prepared.entry_display)
    except OSError as exc:
        log.warning("file digests for the similarity view failed: %s", exc)
        return [FileHash("zip", "", zip_sha256)] if zip_sha256 else []


def _run_harness(prepared: _Prepared, box: HarnessBox) -> _HarnessRun:
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


def _classify(run: _HarnessRun, limits: Limits, config: ScoringConfig, prepared: _Prepared) -> ScoringError | None:
    """Decide what the run means (scorer/verdict.py). None: predictions arrived (still to be validated)."""
    entry_name = prepared.extracted.entry.name
    error = classify_run(run.outcome, run.channel, limits)
    if error is None or error.code.blame is Blame.SERVER:
        return error
    if error.code is ErrorCode.TIME_LIMIT and prepared.training is not None:
        training = prepared.training
        params = {"call": training.call, "where": training.where, "where_ja": training.where_ja}
        error = ScoringError(ErrorCode.TRAINING_TIME_LIMIT, {**error.params, **params}, error.detail)
    if error.code is ErrorCode.MODULE_NOT_FOUND:
        try:
            error.params["offered"] = config.runtime.info().offered_libraries()
        except RuntimeUnavailable:  # the list is a courtesy: it must not turn the trainee's error into ours
            error.params["offered"] = "?"
    error.params.setdefault("file", entry_name)
    return error


def _neutral_log(text: str, config: ScoringConfig, run_dir: Path) -> str:
    """Host paths out of the log: the runtime's folders and the run folder get neutral names."""
    for bind in config.runtime.binds():
        text = text.replace(bind.dest, RUNTIME_MARK)
    return text.replace(str(run_dir), "")


def _facts(
    run: _HarnessRun, started: float, config: ScoringConfig, run_dir: Path, error: ScoringError | None
) -> RunFacts:
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
        log=_neutral_log(log_text, config, run_dir),
        duration_s=time.monotonic() - started,
        sandbox_seconds=outcome.duration_s,
        predict_seconds=channel.predict_seconds,
        peak_memory_mb=round(peak_bytes / 1024**2, 1),
        isolation=outcome.isolation.value,
        run_id=run.run_id,
    )


def _load_images(path: Path) -> int:
    """The number of images, after checking the file is what the harness expects (once per
    process and file version)."""
    try:
        shape = _images_shape(_file_key(path))
    except (OSError, ValueError) as exc:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"test images unreadable: {exc}") from exc
    if len(shape) != 4 or tuple(shape[1:]) != IMAGE_SHAPE:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"test images have shape {shape}")
    return int(shape[0])


@functools.lru_cache(maxsize=4)
def _images_shape(key: tuple[str, int, int, int, int]) -> tuple[int, ...]:
    return tuple(np.load(key[0], mmap_mode="r", allow_pickle=False).shape)


def _file_key(path: Path) -> tuple[str, int, int, int, int]:
    """Changes whenever the file may have: a replaced or rewritten file is read again."""
    st = os.stat(path)
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _labels_of(key: tuple[str, int, int, int, int]) -> np.ndarray:
    ids = labels_to_ids(np.load(key[0], allow_pickle=False))
    ids.flags.writeable = False  # shared by every run of this process
    return ids


def _load_labels(path: Path, expected: int) -> np.ndarray:
    """The class ids of the test set, read once per process and file version."""
    try:
        ids = _labels_of(_file_key(path))
    except (OSError, ValueError) as exc:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"test labels unreadable: {exc}") from exc
    if len(ids) != expected:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"{len(ids)} labels for {expected} images")
    return ids


def _decode_predictions(payload: bytes) -> np.ndarray:
    try:
        predictions: np.ndarray = np.load(io.BytesIO(payload), allow_pickle=False)
        return predictions
    except Exception as exc:  # whatever the trainee's bytes make np.load raise
        raise ScoringError(ErrorCode.PREDICTION_SHAPE, {"got": "unreadable predictions"}) from exc


def _runtime_versions(config: ScoringConfig) -> dict[str, str]:
    """The run's runtime: its name ("numpy", "tensorflow") and versions, as the report keeps them."""
    try:
        return {"name": config.runtime.name.value, **config.runtime.info().versions()}
    except RuntimeUnavailable:
        return {"name": config.runtime.name.value}


def scoring_spec(config: ScoringConfig, test_data: Path) -> HarnessSpec:
    """What a hidden-set run's sandbox is started with (to pre-warm one: WarmSlot.warm)."""
    return HarnessSpec(config, config.limits, Images.from_file(test_data))


def scoring_specs(config: ScoringConfig, test_data: Path) -> list[HarnessSpec]:
    """:func:`scoring_spec` for every installed runtime: what a worker keeps warm, one of each."""
    return [scoring_spec(config.using(runtime), test_data) for runtime in config.runtimes.installed()]


def check_spec(
    config: ScoringConfig, sample_data: Path | None = None, sample_labels: Path | None = None
) -> HarnessSpec:
    """What a pre-flight's sandbox is started with (to pre-warm one: WarmSlot.warm)."""
    return HarnessSpec(config, config.smoke_limits, _smoke_sample(sample_data, sample_labels)[0])


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
    runtime: RuntimeName | None = None,
) -> ScoreReport:
    """Score one zip against a labelled test set. Never raises for anything the zip or sandbox does.

    The runtime is the one its code needs among those installed (``runtime`` forces one: the
    command line's); the cohort's choice was applied by the pre-flight that accepted the upload.

    With ``warm``, the run takes the slot's pre-warmed sandbox when it fits (see scorer.warm); the
    caller warms the next one afterwards, from the same thread.
    """
    started = time.monotonic()
    limits = config.limits
    report = ScoreReport(
        status="failed",
        error=None,
        metrics=None,
        facts=RunFacts(),
        runtime=_runtime_versions(config),
        limits=config.limits_json(limits),
    )
    try:
        report.zip_sha256 = sha256_file(zip_path)
    except OSError as exc:
        report.error = ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"submission file unreadable: {exc}")
        return report
    run: _HarnessRun | None = None
    box: HarnessBox | None = None
    staging: Path | None = None
    try:
        try:
            n_images = _load_images(test_data)
            labels = _load_labels(test_labels, n_images)  # fail before running anything if the set is broken
            staging, prepared = _staged(zip_path, config)
            report.notices, report.entry = prepared.notices, prepared.entry_display
            report.file_hashes = _file_hashes(prepared, staging, report.zip_sha256)
            # The pre-flight that accepted it checked the cohort's runtimes: a runtime missing now is ours.
            config = _forced(config, runtime) or _runtime_for(prepared, config, None, refuse_missing=False)
            report.runtime = _runtime_versions(config)
            box, staging = _box(scoring_spec(config, test_data), warm, staging), None
            run = _run_harness(prepared, box)
            error = _classify(run, limits, config, prepared)
            report.facts = _facts(run, started, config, box.run_dir, error)
            if error is not None:
                raise error
            assert run.payload is not None
            predictions = _validated(run.payload, n_images)
            report.metrics = compute_metrics(predictions, labels)
            report.predictions = predictions.ids
            report.status = "succeeded"
        except ScoringError as exc:
            report.error = exc
        except (SandboxUnavailable, RuntimeUnavailable) as exc:
            report.error = ScoringError(ErrorCode.SANDBOX_UNAVAILABLE, detail=str(exc))
        except Exception as exc:
            log.exception("scoring %s failed internally", zip_path)
            report.error = _unexpected(exc, run)
    finally:
        _done_with(box, warm)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    report.facts.duration_s = time.monotonic() - started
    return disclose(report, config.disclosure)


def _unexpected(exc: Exception, run: _HarnessRun | None) -> ScoringError:
    """A failure no branch foresaw. Before trainee code ran it is a bug of ours; after, the trainee's
    code may have provoked it (it controls what reached us), and a server fault would give the upload
    back: then it is the submission's, and the log above (for admins) has the exception."""
    if run is not None and run.trainee_ran:
        return ScoringError(ErrorCode.HARNESS_DISRUPTED, {"reason": "the run's result could not be processed"})
    return ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"{type(exc).__name__}: {exc}")


def _validated(payload: bytes, n_images: int) -> Predictions:
    """The predictions, checked; whatever the trainee's bytes do to the checks, the failure is theirs."""
    try:
        return validate_predictions(_decode_predictions(payload), n_images)
    except ScoringError:
        raise
    except Exception as exc:
        raise ScoringError(ErrorCode.PREDICTION_SHAPE, {"got": "unreadable predictions"}) from exc


def disclose(report: ScoreReport, disclosure: Disclosure) -> ScoreReport:
    """Bound what a hidden-set run reveals, where the report leaves the scorer (scorer/disclosure.py).

    A run blamed on the server (its upload given back) keeps no trainee output at all. Otherwise the
    trainee-visible log, traceback included, and the error's parameters share ``excerpt_bytes``;
    ``staff_log`` keeps up to ``stored_bytes`` of the same text for instructors and admins.
    """
    error = report.error
    text = report.facts.log
    if error is not None and error.code.blame is Blame.SERVER:
        report.facts.log = ""
        report.staff_log = ""
        error.params = {}
        return report
    report.staff_log = excerpt(text, disclosure.stored_bytes)
    if error is not None and report.facts.run_id:
        error.detail = ""  # a run's traceback is in the log (see _facts)
    budget = disclosure.excerpt_bytes
    if budget is None:  # python -m scorer run --full-log
        report.facts.log = text
        return report
    if error is not None:
        error.params = cap_params(error.params)
        if params_bytes(error.params) > budget // 2:
            error.params = cap_params(error.params, value_bytes=max(16, budget // (4 * max(1, len(error.params)))))
        budget -= params_bytes(error.params)
    report.facts.log = excerpt(text, max(0, budget))
    return report


def _smoke_sample(sample_data: Path | None, sample_labels: Path | None) -> tuple[Images, np.ndarray | None, int]:
    """The smoke run's images (as a small .npy in memory), their class ids when known, their number;
    chosen once per process and version of the public files."""
    data_key = _file_key(sample_data) if sample_data is not None else None
    labels_key = _file_key(sample_labels) if sample_labels is not None else None
    return _smoke_sample_of(data_key, labels_key)


@functools.lru_cache(maxsize=4)
def _smoke_sample_of(
    data_key: tuple[str, int, int, int, int] | None, labels_key: tuple[str, int, int, int, int] | None
) -> tuple[Images, np.ndarray | None, int]:
    """A handful of public images for the smoke run, and their class ids when the labels are known.

    With labels (the course's public training set), 2 per class chosen by :mod:`scorer.smoke`; the
    ids stay in this process. Without, 30 spread over the file, or 2 per class of the synthetic set.
    """
    ids: np.ndarray | None = None
    if data_key is not None and labels_key is not None:
        from scorer.smoke import select_smoke_sample

        images, ids = select_smoke_sample(
            np.load(data_key[0], allow_pickle=False), np.load(labels_key[0], allow_pickle=False)
        )
    elif data_key is not None:
        images = np.load(data_key[0], allow_pickle=False)
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(f"{data_key[0]}: expected images shaped (N, 1, 28, 28)")
        step = max(1, len(images) // 30)
        images = images[::step][:30]
    else:
        from scorer.dataset import sample_images

        images, _ = sample_images(per_class=SMOKE_PER_CLASS)
    if ids is not None:
        ids.flags.writeable = False
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(images), allow_pickle=False)
    return Images.from_bytes(buffer.getvalue()), ids, len(images)


def check_submission(
    zip_path: Path,
    *,
    config: ScoringConfig,
    sample_data: Path | None = None,
    sample_labels: Path | None = None,
    warm: WarmSlot | None = None,
    runtimes: Collection[RuntimeName] | None = None,
    runtime: RuntimeName | None = None,
) -> CheckReport:
    """Pre-flight: static checks, then a short sandboxed run on a few public images.

    With ``sample_labels`` (the public training set's, given with ``sample_data``), the parent also
    scores the smoke run after it has ended (``report.smoke``); the labels never enter the sandbox.
    ``runtimes``: the ones the cohort allows (None: every installed one); a submission whose code
    needs another is refused before anything runs. ``runtime`` forces one (the command line's).
    """
    started = time.monotonic()
    report = CheckReport(ok=False, stage="static", error=None, facts=RunFacts())
    box: HarnessBox | None = None
    staging: Path | None = None
    try:
        try:
            report.zip_sha256 = sha256_file(zip_path)
            images, smoke_ids, n_images = _smoke_sample(sample_data, sample_labels)
            limits = config.smoke_limits
            staging, prepared = _staged(zip_path, config)
            report.notices, report.entry = prepared.notices, prepared.entry_display
            report.framework_import = prepared.frameworks[0] if prepared.frameworks else None
            config = _forced(config, runtime) or _runtime_for(prepared, config, runtimes, refuse_missing=True)
            report.runtime = config.runtime.name.value
            box, staging = _box(HarnessSpec(config, limits, images), warm, staging), None
            report.stage = "smoke"
            run = _run_harness(prepared, box)
            error = _classify(run, limits, config, prepared)
            report.facts = _facts(run, started, config, box.run_dir, error)
            if error is not None:
                raise error
            assert run.payload is not None
            smoke_predictions = validate_predictions(_decode_predictions(run.payload), n_images)
            if smoke_ids is not None:
                from scorer.smoke import smoke_accuracy

                report.smoke = smoke_accuracy(smoke_predictions, smoke_ids)
            report.ok = True
        except ScoringError as exc:
            report.error = exc
        except (SandboxUnavailable, RuntimeUnavailable) as exc:
            report.error = ScoringError(ErrorCode.SANDBOX_UNAVAILABLE, detail=str(exc))
        except Exception as exc:
            log.exception("checking %s failed internally", zip_path)
            report.error = ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"{type(exc).__name__}: {exc}")
    finally:
        _done_with(box, warm)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    report.facts.duration_s = time.monotonic() - started
    return report


def _forced(config: ScoringConfig, runtime: RuntimeName | None) -> ScoringConfig | None:
    """The configuration of a runtime asked for by name (None: choose from the code)."""
    if runtime is None:
        return None
    chosen = config.runtimes.get(runtime)
    if chosen is None:
        raise RuntimeUnavailable(f"the {runtime.label} runtime is not installed")
    return config.using(chosen)
