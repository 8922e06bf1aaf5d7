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
import signal
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
from scorer.errors import ErrorCode, ScoringError, human_bytes
from scorer.intake import ExtractedSubmission, IntakeLimits, extract_submission
from scorer.metrics import compute_metrics, labels_to_ids, validate_predictions
from scorer.notebook import notebook_to_source
from scorer.notices import Notice
from scorer.report import CheckReport, RunFacts, ScoreReport
from scorer.runtime import Runtime, RuntimeUnavailable
from scorer.sandbox import SandboxConfig, SandboxUnavailable, run_sandboxed
from scorer.sandbox.types import Bind, Limits, SandboxOutcome, SandboxRequest, Termination
from scorer.static_check import check_entry_source

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
    events: list[dict[str, Any]]
    payload: bytes | None


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


def _parse_events(data: bytes) -> tuple[list[dict[str, Any]], bytes | None]:
    """Read the harness's JSON lines; stop at the first line that is not ours (trainee noise on fd 3)."""
    events: list[dict[str, Any]] = []
    payload: bytes | None = None
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            break
        try:
            event = json.loads(data[pos:end])
        except ValueError:
            break
        if not isinstance(event, dict) or "event" not in event:
            break
        pos = end + 1
        events.append(event)
        if event["event"] == "result":
            size = int(event.get("bytes", 0))
            if len(data) - pos >= size:
                payload = data[pos : pos + size]
            pos += size
    return events, payload


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
    events, payload = _parse_events(outcome.result)
    return _HarnessRun(run_id, outcome, events, payload)


def _limit_params(code: ErrorCode, limits: Limits) -> dict[str, Any]:
    if code is ErrorCode.TIME_LIMIT:
        return {"limit": f"{limits.wall_seconds:g} s"}
    if code is ErrorCode.MEMORY_LIMIT:
        return {"limit": human_bytes(limits.memory_bytes)}
    if code is ErrorCode.DISK_LIMIT:
        return {"limit": human_bytes(limits.writable_bytes)}
    if code is ErrorCode.OUTPUT_TOO_LARGE:
        return {"limit": human_bytes(limits.output_bytes)}
    return {}


def _failure(code: ErrorCode, limits: Limits, params: dict[str, Any] | None = None, detail: str = "") -> ScoringError:
    return ScoringError(code, {**_limit_params(code, limits), **(params or {})}, detail)


def _classify(run: _HarnessRun, limits: Limits, config: ScoringConfig, entry_name: str) -> ScoringError | None:
    """Decide what the run means. None: a complete set of predictions arrived (still to be validated)."""
    outcome = run.outcome
    kinds = {e["event"]: e for e in run.events}
    if outcome.termination is Termination.SETUP_FAILED:
        return _failure(ErrorCode.SANDBOX_UNAVAILABLE, limits, detail=outcome.setup_error)
    if "hello" not in kinds:
        # No trainee code runs before "hello": whatever stopped us is the service's fault.
        return _failure(ErrorCode.INTERNAL_ERROR, limits, detail=f"harness did not start: {outcome.termination}")
    if "error" in kinds:
        event = kinds["error"]
        try:
            code = ErrorCode(str(event.get("code")))
        except ValueError:
            code = ErrorCode.INTERNAL_ERROR
        params = dict(event.get("params") or {})
        if code is ErrorCode.MODULE_NOT_FOUND:
            params["offered"] = config.runtime.info().offered_libraries()
        params.setdefault("file", entry_name)
        return _failure(code, limits, params, str(event.get("traceback", "")))
    if "result" in kinds and run.payload is not None:
        return None
    termination = outcome.termination
    if termination in (Termination.WALL_TIMEOUT, Termination.CPU_TIMEOUT):
        return _failure(ErrorCode.TIME_LIMIT, limits)
    if termination in (Termination.OUTPUT_LIMIT, Termination.RESULT_LIMIT):
        return _failure(ErrorCode.OUTPUT_TOO_LARGE, limits)
    if termination is Termination.FILE_SIZE_LIMIT:
        return _failure(ErrorCode.DISK_LIMIT, limits)
    if termination is Termination.SIGNALLED and outcome.signal is not None:
        # RLIMIT_AS makes most allocations fail with MemoryError (reported by the harness); a process
        # killed near the limit (an allocation in C that aborted, the kernel's OOM killer) is the same.
        if outcome.peak_memory_bytes >= 0.8 * limits.memory_bytes:
            return _failure(ErrorCode.MEMORY_LIMIT, limits)
        name = signal.Signals(outcome.signal).name
        return _failure(ErrorCode.SUBMISSION_EXITED, limits, {"reason": f"killed by {name}"})
    return _failure(ErrorCode.SUBMISSION_EXITED, limits, {"reason": f"exit code {outcome.exit_code}"})


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
    if error is not None and error.detail and error.code.blame.value == "submission":
        log_text = f"{log_text.rstrip()}\n{error.detail}".lstrip("\n")
    result = next((e for e in run.events if e["event"] == "result"), None)
    final = next((e for e in reversed(run.events) if e["event"] in ("result", "error")), None)
    if final is not None and isinstance(final.get("peak_rss_kib"), int):
        peak_bytes = final["peak_rss_kib"] * 1024  # measured inside: see harness.peak_rss_kib
    else:
        peak_bytes = outcome.peak_memory_bytes  # killed before reporting: an upper bound
    return RunFacts(
        log=_neutral_log(log_text, config, run_dir),
        duration_s=time.monotonic() - started,
        sandbox_seconds=outcome.duration_s,
        predict_seconds=float(result["predict_seconds"]) if result else None,
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
    except (OSError, ValueError) as exc:
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
    with _run_dir(config) as run_dir:
        try:
            n_images = _load_images(test_data)
            _load_labels(test_labels, n_images)  # fail before running anything if the set is broken
            prepared = _prepare(zip_path, run_dir, config)
            report.notices, report.entry = prepared.notices, prepared.entry_display
            run = _run_harness(prepared, run_dir, test_data, limits, config)
            error = _classify(run, limits, config, prepared.extracted.entry.name)
            report.facts = _facts(run, started, config, run_dir, error)
            if error is not None:
                raise error
            assert run.payload is not None
            predictions = validate_predictions(_decode_predictions(run.payload), n_images)
            report.metrics = compute_metrics(predictions, _load_labels(test_labels, n_images))
            report.status = "succeeded"
        except ScoringError as exc:
            report.error = exc
        except (SandboxUnavailable, RuntimeUnavailable) as exc:
            report.error = ScoringError(ErrorCode.SANDBOX_UNAVAILABLE, detail=str(exc))
        except Exception as exc:  # a bug of ours: never blamed on the trainee
            log.exception("scoring %s failed internally", zip_path)
            report.error = ScoringError(ErrorCode.INTERNAL_ERROR, detail=f"{type(exc).__name__}: {exc}")
    report.facts.duration_s = time.monotonic() - started
    return report


def _sample_images(sample_data: Path | None, run_dir: Path) -> Path:
    """A handful of public images for the smoke run: 2 per class from the synthetic train set."""
    if sample_data is not None:
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
    return path


def check_submission(zip_path: Path, *, config: ScoringConfig, sample_data: Path | None = None) -> CheckReport:
    """Pre-flight: static checks, then a short sandboxed run on a few public images (no labels at all)."""
    started = time.monotonic()
    report = CheckReport(ok=False, stage="static", error=None, facts=RunFacts())
    with _run_dir(config) as run_dir:
        try:
            report.zip_sha256 = sha256_file(zip_path)
            prepared = _prepare(zip_path, run_dir, config)
            report.notices, report.entry = prepared.notices, prepared.entry_display
            report.stage = "smoke"
            images = _sample_images(sample_data, run_dir)
            limits = config.smoke_limits
            run = _run_harness(prepared, run_dir, images, limits, config)
            error = _classify(run, limits, config, prepared.extracted.entry.name)
            report.facts = _facts(run, started, config, run_dir, error)
            if error is not None:
                raise error
            assert run.payload is not None
            validate_predictions(_decode_predictions(run.payload), _load_images(images))
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
