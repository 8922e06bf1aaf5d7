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
import hashlib
import io
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
from scorer.runtime import Runtime, RuntimeUnavailable
from scorer.sandbox import SandboxConfig, SandboxUnavailable, run_sandboxed
from scorer.sandbox.types import Bind, Limits, SandboxOutcome, SandboxRequest
from scorer.similarity import FileHash, file_hashes
from scorer.static_check import check_entry_source
from scorer.verdict import HarnessChannel, classify_run, parse_channel

log = logging.getLogger(__name__)

HARNESS_SOURCE = Path(__file__).parent / "harness" / "runner.py"
SMOKE_PER_CLASS = 2

# Where things are inside the sandbox: neutral names, so logs and /proc/self/mountinfo show no host path.
SUBMISSION_RO = "/submission"
WORK = "/work"
DATA = "/data"
HARNESS = "/harness"
INPUT = "/input"
RUNTIME_MARK = "<runtime>"


@dataclass(frozen=True)
class ScoringConfig:
    runtime: Runtime
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    limits: Limits = field(default_factory=Limits)
    smoke_limits: Limits = field(default_factory=lambda: Limits(wall_seconds=60.0))
    intake: IntakeLimits = field(default_factory=IntakeLimits)
    chunk_size: int = 500
    work_root: Path | None = None  # parent of the per-run folders; must be reachable by the sandbox uid
    # What a run on the hidden set shows of its trainee-controlled output (see scorer/disclosure.py).
    disclosure: Disclosure = field(default_factory=Disclosure)

    def limits_json(self, limits: Limits) -> dict[str, Any]:
        return {**dataclasses.asdict(limits), "chunk_size": self.chunk_size}


@dataclass
class _Prepared:
    extracted: ExtractedSubmission
    argv_tail: list[str]  # the harness's arguments that depend on the entry
    notices: list[Notice]
    entry_display: str


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


@contextmanager
def _run_dir(config: ScoringConfig) -> Iterator[Path]:
    """A per-run folder the sandbox uid can read (0755), removed afterwards whatever happens."""
    root = config.work_root or Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="katakana-run-", dir=root))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_readable(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    path.write_bytes(data)
    path.chmod(0o644)


def _prepare(zip_path: Path, run_dir: Path, config: ScoringConfig) -> _Prepared:
    """Extract and statically check the entry; raises ScoringError before any trainee code runs."""
    extracted = extract_submission(zip_path, run_dir / "sub", config.intake)
    notices = list(extracted.notices)
    rel_entry = extracted.entry.relative_to(extracted.root).as_posix()
    rel_dir = extracted.entry_dir.relative_to(extracted.root).as_posix()
    entry_in_sandbox = f"{WORK}/{rel_entry}"
    workdir = WORK if rel_dir in ("", ".") else f"{WORK}/{rel_dir}"
    display = extracted.entry.name
    raw = extracted.entry.read_bytes()
    if extracted.entry_kind == "ipynb":
        nb = notebook_to_source(raw, display)
        notices += nb.notices
        notices += check_entry_source(nb.source, display, nb.locate)
        _write_readable(run_dir / "input" / "submit_katakana.py", nb.source.encode("utf-8"))
        _write_readable(run_dir / "input" / "cellmap.json", json.dumps(nb.line_map).encode("utf-8"))
        source = f"{INPUT}/submit_katakana.py"
        tail = ["--cellmap", f"{INPUT}/cellmap.json"]
    else:
        # Bytes, so coding cookies and BOMs are honoured exactly as the import inside will.
        notices += check_entry_source(raw, display, None)
        source = entry_in_sandbox
        tail = []
    argv_tail = ["--source", source, "--entry", entry_in_sandbox, "--workdir", workdir, *tail]
    return _Prepared(extracted, argv_tail, notices, rel_entry)


def _file_hashes(prepared: _Prepared, run_dir: Path, zip_sha256: str) -> list[FileHash]:
    """Digests for the similarity view; a failure here must never cost the trainee a result."""
    try:
        converted = run_dir / "input" / "submit_katakana.py"  # a notebook's code cells, as run
        code = converted.read_bytes() if converted.exists() else prepared.extracted.entry.read_bytes()
        return file_hashes(zip_sha256, prepared.extracted.root, code, prepared.entry_display)
    except OSError as exc:
        log.warning("file digests for the similarity view failed: %s", exc)
        return [FileHash("zip", "", zip_sha256)] if zip_sha256 else []


def _sandbox_env(limits: Limits) -> dict[str, str]:
    threads = str(max(1, limits.cpus))
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "NUMEXPR_NUM_THREADS": threads,
        "VECLIB_MAXIMUM_THREADS": threads,
    }


def _run_harness(
    prepared: _Prepared, run_dir: Path, images: Path, limits: Limits, config: ScoringConfig
) -> _HarnessRun:
    _write_readable(run_dir / "harness" / "runner.py", HARNESS_SOURCE.read_bytes())
    data_dir = run_dir / "data"
    data_dir.mkdir(exist_ok=True)
    data_dir.chmod(0o755)
    shutil.copyfile(images, data_dir / "images.npy")  # a copy: the original may be readable by us only
    (data_dir / "images.npy").chmod(0o644)
    python = str(config.runtime.python)
    argv = [python, "-s", "-B", f"{HARNESS}/runner.py", *prepared.argv_tail]
    argv += ["--copy-from", SUBMISSION_RO, "--copy-to", WORK, "--data", f"{DATA}/images.npy"]
    argv += ["--chunk", str(config.chunk_size)]
    binds = [
        *config.runtime.binds(),
        Bind(prepared.extracted.root, SUBMISSION_RO),
        Bind(data_dir, DATA),
        Bind(run_dir / "harness", HARNESS),
    ]
    if (run_dir / "input").exists():
        binds.append(Bind(run_dir / "input", INPUT))
    run_id = uuid.uuid4().hex
    env = {**_sandbox_env(limits), "KATAKANA_RUN_ID": run_id}
    request = SandboxRequest(argv=argv, binds=binds, writable_dirs=["/tmp", WORK], env=env, cwd=WORK, limits=limits)
    log.info("sandbox run %s: %s", run_id, prepared.entry_display)
    outcome = run_sandboxed(request, config.sandbox)
    log.info("sandbox run %s ended: %s in %.2f s", run_id, outcome.termination, outcome.duration_s)
    return _HarnessRun(run_id, outcome, parse_channel(outcome.result))


def _classify(run: _HarnessRun, limits: Limits, config: ScoringConfig, entry_name: str) -> ScoringError | None:
    """Decide what the run means (scorer/verdict.py). None: predictions arrived (still to be validated)."""
    error = classify_run(run.outcome, run.channel, limits)
    if error is None or error.code.blame is Blame.SERVER:
        return error
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
    """The number of images, after checking the file is what the harness expects."""
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"test images unreadable: {exc}") from exc
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"test images have shape {images.shape}")
    return int(images.shape[0])


def _load_labels(path: Path, expected: int) -> np.ndarray:
    try:
        ids = labels_to_ids(np.load(path, allow_pickle=False))
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
    try:
        return config.runtime.info().versions()
    except RuntimeUnavailable:
        return {}


def score_submission(zip_path: Path, *, test_data: Path, test_labels: Path, config: ScoringConfig) -> ScoreReport:
    """Score one zip against a labelled test set. Never raises for anything the zip or sandbox does."""
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
    with _run_dir(config) as run_dir:
        try:
            n_images = _load_images(test_data)
            _load_labels(test_labels, n_images)  # fail before running anything if the set is broken
            prepared = _prepare(zip_path, run_dir, config)
            report.notices, report.entry = prepared.notices, prepared.entry_display
            report.file_hashes = _file_hashes(prepared, run_dir, report.zip_sha256)
            run = _run_harness(prepared, run_dir, test_data, limits, config)
            error = _classify(run, limits, config, prepared.extracted.entry.name)
            report.facts = _facts(run, started, config, run_dir, error)
            if error is not None:
                raise error
            labels = _load_labels(test_labels, n_images)  # our own file: failing here is the server's
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


def _sample_images(
    sample_data: Path | None, run_dir: Path, sample_labels: Path | None = None
) -> tuple[Path, np.ndarray | None]:
    """A handful of public images for the smoke run, and their class ids when the labels are known.

    With labels (the course's public training set), 2 per class chosen by :mod:`scorer.smoke`; the
    ids stay in this process. Without, 30 spread over the file, or 2 per class of the synthetic set.
    """
    ids: np.ndarray | None = None
    if sample_data is not None and sample_labels is not None:
        from scorer.smoke import select_smoke_sample

        images, ids = select_smoke_sample(
            np.load(sample_data, allow_pickle=False), np.load(sample_labels, allow_pickle=False)
        )
    elif sample_data is not None:
        images = np.load(sample_data, allow_pickle=False)
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(f"{sample_data}: expected images shaped (N, 1, 28, 28)")
        step = max(1, len(images) // 30)
        images = images[::step][:30]
    else:
        from scorer.dataset import sample_images

        images, _ = sample_images(per_class=SMOKE_PER_CLASS)
    path = run_dir / "sample.npy"
    np.save(path, images)
    return path, ids


def check_submission(
    zip_path: Path, *, config: ScoringConfig, sample_data: Path | None = None, sample_labels: Path | None = None
) -> CheckReport:
    """Pre-flight: static checks, then a short sandboxed run on a few public images.

    With ``sample_labels`` (the public training set's, given with ``sample_data``), the parent also
    scores the smoke run after it has ended (``report.smoke``); the labels never enter the sandbox.
    """
    started = time.monotonic()
    report = CheckReport(ok=False, stage="static", error=None, facts=RunFacts())
    with _run_dir(config) as run_dir:
        try:
            report.zip_sha256 = sha256_file(zip_path)
            prepared = _prepare(zip_path, run_dir, config)
            report.notices, report.entry = prepared.notices, prepared.entry_display
            report.stage = "smoke"
            images, smoke_ids = _sample_images(sample_data, run_dir, sample_labels)
            limits = config.smoke_limits
            run = _run_harness(prepared, run_dir, images, limits, config)
            error = _classify(run, limits, config, prepared.extracted.entry.name)
            report.facts = _facts(run, started, config, run_dir, error)
            if error is not None:
                raise error
            assert run.payload is not None
            smoke_predictions = validate_predictions(_decode_predictions(run.payload), _load_images(images))
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
    report.facts.duration_s = time.monotonic() - started
    return report
