"""Pre-warmed harness sandboxes (scorer/warm.py), with the real sandbox: single use, fresh per run,
falling back to the cold path whenever the warm one does not fit, and showing the run no more than
the cold path does."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from scorer.errors import Blame, ErrorCode
from scorer.pipeline import ScoringConfig, check_spec, check_submission, score_submission, scoring_spec, scoring_specs
from scorer.runtime import Runtime, RuntimeName, find_runtime, find_tensorflow_runtime
from scorer.sandbox.types import Limits, MiB
from scorer.warm import WORK, WarmSlot
from tests.fixtures.artifacts import DataSet
from tests.scorer.procs import processes_with_environ
from tests.scorer.sandbox.conftest import wait_until

pytestmark = pytest.mark.sandbox  # pre-warmed sandboxes, really started

LIMITS = Limits(wall_seconds=60.0, memory_bytes=1024 * MiB)

ZEROS = "import numpy as np\n\ndef predict(test_data):\n    return np.zeros(len(test_data), dtype=int)\n"

# Leaves traces everywhere a run can write (the sandbox's own folders, not this machine's), and
# fails if it finds a trace of an earlier run.
TRACES = f"""
import os, sys
import numpy as np

WRITABLE = ("/tmp", "{WORK}", "/dev/shm")
FOUND = [p + "/trace" for p in WRITABLE if os.path.exists(p + "/trace")]
if FOUND or os.environ.get("KATAKANA_TRACE"):
    raise RuntimeError(f"an earlier run left {{FOUND}}")
for p in WRITABLE:
    p += "/trace"
    open(p, "w").write("run 1")
os.environ["KATAKANA_TRACE"] = "1"
sys.modules["numpy"].katakana_trace = True

def predict(test_data):
    return np.zeros(len(test_data), dtype=int)
"""

# What a run can find of the host: the descriptors of every process it sees (the sandbox's PID 1
# too), its mappings and mounts (paths of what is open, mapped or bound).
LOOK = """
import os
import numpy as np

fds = {}
for pid in (p for p in os.listdir("/proc") if p.isdigit()):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[f"{pid}/{fd}"] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
print("FDS", fds)
print("MAPS", open("/proc/self/maps").read())
print("MOUNTS", open("/proc/self/mountinfo").read())

def predict(test_data):
    return np.zeros(len(test_data), dtype=int)
"""


@pytest.fixture(scope="module")
def config() -> ScoringConfig:
    return ScoringConfig(runtime=find_runtime(), limits=LIMITS, smoke_limits=LIMITS)


@pytest.fixture
def slot() -> Iterator[WarmSlot]:
    """Closed after the test, as a worker does: a used sandbox is reaped and swept only then."""
    slot = WarmSlot()
    yield slot
    slot.close()


def make_zip(path: Path, source: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("sub/submit_katakana.py", source)
    return path


def score(archive: Path, data: DataSet, config: ScoringConfig, slot: WarmSlot | None):  # type: ignore[no-untyped-def]
    return score_submission(archive, test_data=data.small_data, test_labels=data.small_label, config=config, warm=slot)


def test_a_warm_sandbox_serves_exactly_one_run_then_is_torn_down(
    tmp_path: Path, synthetic_set: DataSet, config: ScoringConfig, slot: WarmSlot
) -> None:
    assert slot.warm(scoring_spec(config, synthetic_set.small_data))
    box = slot.box
    assert box is not None and box.started is not None
    bwrap_pid, run_dir, run_id = box.started.spawned.pid, box.run_dir, box.run_id
    assert box.started.ready(timeout=60), "the harness never said hello while waiting"
    assert box.started.alive()

    report = score(make_zip(tmp_path / "z.zip", ZEROS), synthetic_set, config, slot)

    assert report.status == "succeeded", report.to_json()
    assert report.facts.isolation == "bwrap"
    assert report.facts.run_id == run_id, "the run did not go through the warm sandbox"
    assert (slot.served, slot.missed) == (1, 0)
    assert slot.box is None, "a used sandbox must not stay in the slot"
    # When the result is known, every process of the run has been killed: the kernel tears them
    # down off the result's path (a TensorFlow process takes most of a second) ...
    assert wait_until(lambda: processes_with_environ(f"KATAKANA_RUN_ID={run_id}") == [])
    # ... and bwrap is reaped, its folder and uid cleaned up, before the next sandbox is warmed.
    assert slot.retired is box
    assert slot.warm(scoring_spec(config, synthetic_set.small_data))
    assert slot.retired is None and slot.box is not box
    assert not Path(f"/proc/{bwrap_pid}").exists() or _is_zombie_of_other(bwrap_pid)
    assert not run_dir.exists()
    slot.close()
    with pytest.raises(RuntimeError):
        box.run({})  # single use, whatever the caller does


def _is_zombie_of_other(pid: int) -> bool:
    """The pid was reused by some unrelated process (not ours: ours was reaped)."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().find(b"KATAKANA_RUN_ID") < 0
    except OSError:
        return True


def test_the_next_run_gets_a_fresh_sandbox(
    tmp_path: Path, synthetic_set: DataSet, config: ScoringConfig, slot: WarmSlot
) -> None:
    archive = make_zip(tmp_path / "traces.zip", TRACES)
    run_ids = []
    for _ in range(2):
        assert slot.warm(scoring_spec(config, synthetic_set.small_data))
        report = score(archive, synthetic_set, config, slot)
        assert report.status == "succeeded", report.to_json()  # the second run found no trace of the first
        run_ids.append(report.facts.run_id)
    assert slot.served == 2
    assert run_ids[0] != run_ids[1]


def test_a_dead_warm_sandbox_falls_back_to_a_cold_run(
    tmp_path: Path, synthetic_set: DataSet, config: ScoringConfig, slot: WarmSlot
) -> None:
    assert slot.warm(scoring_spec(config, synthetic_set.small_data))
    assert slot.box is not None and slot.box.started is not None
    warm_run_id = slot.box.run_id
    signal.pidfd_send_signal(slot.box.started.spawned.pidfd, signal.SIGKILL)
    # Dead means the pidfd is readable; wait for that rather than for a time.
    import select

    select.select([slot.box.started.spawned.pidfd], [], [], 30)

    report = score(make_zip(tmp_path / "z.zip", ZEROS), synthetic_set, config, slot)

    assert report.status == "succeeded", report.to_json()
    assert report.facts.run_id != warm_run_id
    assert (slot.served, slot.missed, slot.discarded) == (0, 1, 1)


def test_a_warm_sandbox_is_ended_at_its_idle_bound_without_waiting_for_a_job(
    tmp_path: Path, synthetic_set: DataSet, config: ScoringConfig
) -> None:
    slot = WarmSlot(max_idle_seconds=2.0)
    assert slot.warm(scoring_spec(config, synthetic_set.small_data))
    assert slot.box is not None and slot.box.started is not None
    stale_id, stale_dir = slot.box.run_id, slot.box.run_dir
    # Ended by the slot's watcher while nothing runs here: processes, folder, no zombie left behind.
    assert wait_until(lambda: slot.box is None and processes_with_environ(f"KATAKANA_RUN_ID={stale_id}") == [])
    assert wait_until(lambda: zombie_children() == [])
    assert not stale_dir.exists()
    assert slot.discarded == 1
    report = score(make_zip(tmp_path / "z.zip", ZEROS), synthetic_set, config, slot)
    assert report.status == "succeeded", report.to_json()
    assert (slot.served, slot.missed, slot.discarded) == (0, 1, 1)
    slot.close()


def test_a_warm_sandbox_that_dies_while_idle_is_reaped_at_once(
    synthetic_set: DataSet, config: ScoringConfig, slot: WarmSlot
) -> None:
    # Its PID-1 backstop fires after idle + wall time: bwrap exits, and a zombie stayed under the
    # worker until its next task (17 minutes and more on an idle pre-flight worker).
    assert slot.warm(scoring_spec(config, synthetic_set.small_data))
    assert slot.box is not None and slot.box.started is not None
    os.kill(slot.box.started.spawned.pid, signal.SIGKILL)
    assert wait_until(lambda: slot.box is None and zombie_children() == [])
    assert slot.discarded == 1
    slot.close()


def zombie_children() -> list[str]:
    """Our children that ended and were not reaped: ``pid (name)``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(stat.split(")", 1)[0] + ")")
    return found


def test_a_warm_sandbox_for_other_limits_or_images_is_not_used(
    tmp_path: Path, synthetic_set: DataSet, config: ScoringConfig, slot: WarmSlot
) -> None:
    archive = make_zip(tmp_path / "z.zip", ZEROS)
    other = dataclasses.replace(config, limits=dataclasses.replace(LIMITS, wall_seconds=30.0))
    assert slot.warm(scoring_spec(other, synthetic_set.small_data))
    assert score(archive, synthetic_set, config, slot).status == "succeeded"
    assert (slot.served, slot.missed, slot.discarded) == (0, 1, 1)

    # The test set's file replaced after the sandbox was warmed: the warm one read the old file.
    images = tmp_path / "images.npy"
    shutil.copyfile(synthetic_set.small_data, images)
    assert slot.warm(scoring_spec(config, images))
    np.save(images, np.load(synthetic_set.small_data)[::-1])
    report = score_submission(
        archive, test_data=images, test_labels=synthetic_set.small_label, config=config, warm=slot
    )
    assert report.status == "succeeded", report.to_json()
    assert (slot.served, slot.missed, slot.discarded) == (0, 2, 2)


@pytest.mark.parametrize("runtime", [RuntimeName.NUMPY, pytest.param(RuntimeName.TENSORFLOW, marks=pytest.mark.slow)])
def test_images_readable_only_by_the_worker_reach_the_run_and_no_host_path_does(
    runtime: RuntimeName, tmp_path: Path, synthetic_set: DataSet, request: pytest.FixtureRequest, slot: WarmSlot
) -> None:
    """The hidden set lives in a folder the sandbox's uid cannot read: the run still gets the images
    (through a descriptor read before any trainee code), but neither the descriptor, a mapping nor
    a mount shows the host folder, and the labels are nowhere. In either runtime: TensorFlow's
    sandbox gets its harness as a data file and its images and job over the job channel too."""
    both = runtime is RuntimeName.TENSORFLOW
    config: ScoringConfig = request.getfixturevalue("both" if both else "config")
    private = tmp_path / "hidden"
    private.mkdir(mode=0o700)
    images, labels = private / "test_data.npy", private / "test_label.npy"
    shutil.copyfile(synthetic_set.small_data, images)
    shutil.copyfile(synthetic_set.small_label, labels)
    images.chmod(0o600)
    labels.chmod(0o600)
    archive = make_zip(tmp_path / "look.zip", f"import keras\n{LOOK}" if both else LOOK)  # keras: its runtime
    full = dataclasses.replace(config, disclosure=dataclasses.replace(config.disclosure, excerpt_bytes=None))
    chosen = full.runtimes.get(runtime)
    assert chosen is not None
    for warm in (False, True):
        if warm:
            assert slot.warm(scoring_spec(full.using(chosen), images))
        report = score_submission(archive, test_data=images, test_labels=labels, config=full, warm=slot)
        assert report.status == "succeeded", report.to_json()
        assert report.runtime["name"] == runtime.value
        assert report.facts.predict_seconds is not None
        assert str(private) not in report.log
        assert "test_label" not in report.log and "test_data" not in report.log
        fds_line = next(line for line in report.log.splitlines() if line.startswith("FDS"))
        assert ".npy" not in fds_line and "memfd" not in fds_line
        assert "'1/" in fds_line  # the sandbox's PID 1 was looked at too
        assert bound_host_folders(report.log) == []
    assert slot.served == 1


def bound_host_folders(log: str) -> list[str]:
    """Mounts (from LOOK's mountinfo) of a host folder under another name: their root, the folder's
    path on the host, differs from where they are mounted. A whole filesystem (/), a bind at the
    same path (/usr, the runtime), a device node and bwrap's own root and data files are fine."""
    found = []
    for line in log.removeprefix("MOUNTS ").splitlines():
        fields = line.removeprefix("MOUNTS ").split()
        if " - " not in line or len(fields) < 5:
            continue
        root, point = fields[3], fields[4]
        device = point.startswith("/dev/") and root == "/" + point.rsplit("/", 1)[1]
        if root not in ("/", point, "/newroot") and not device and not root.startswith("/bindfile"):
            found.append(f"{root} at {point}")
    return found


def test_preflight_through_a_warm_sandbox(
    tmp_path: Path, synthetic_set: DataSet, config: ScoringConfig, slot: WarmSlot
) -> None:
    archive = make_zip(tmp_path / "z.zip", ZEROS)
    spec = check_spec(config, synthetic_set.train_data, synthetic_set.train_label)
    assert slot.warm(spec)
    report = check_submission(
        archive,
        config=config,
        sample_data=synthetic_set.train_data,
        sample_labels=synthetic_set.train_label,
        warm=slot,
    )
    assert report.ok, report.to_json()
    assert report.smoke is not None and report.smoke.total == 30
    assert slot.served == 1


def test_without_bubblewrap_nothing_is_warmed(tmp_path: Path, synthetic_set: DataSet, slot: WarmSlot) -> None:
    """The unsandboxed fallback always runs cold (and still scores)."""
    from scorer.sandbox import SandboxConfig

    config = ScoringConfig(runtime=find_runtime(), limits=LIMITS, sandbox=SandboxConfig(mode="unsandboxed"))
    assert not slot.warm(scoring_spec(config, synthetic_set.small_data))
    report = score(make_zip(tmp_path / "z.zip", ZEROS), synthetic_set, config, slot)
    assert report.status == "succeeded", report.to_json()
    assert report.facts.isolation == "unsandboxed"
    assert os.path.exists(synthetic_set.small_data)


# Longer than the wall limit below: a run whose start-up counted against its wall clock would fail.
SLOW_START_SECONDS = 6
SHORT_WALL = dataclasses.replace(LIMITS, wall_seconds=4.0)


@pytest.fixture
def slow_runtime() -> Iterator[Runtime]:
    """The reference runtime behind a start that takes SLOW_START_SECONDS in the sandbox, as
    TensorFlow's import does on a loaded machine (the probe outside the sandbox is not slowed)."""
    folder = Path(tempfile.mkdtemp(prefix="katakana-slow-runtime-"))
    try:
        folder.chmod(0o755)  # the sandbox's pool uid runs it
        (folder / "bin").mkdir(mode=0o755)
        python = folder / "bin" / "python"
        real = find_runtime().python
        python.write_text(f'#!/bin/sh\n[ -n "$KATAKANA_RUN_ID" ] && sleep {SLOW_START_SECONDS}\nexec {real} "$@"\n')
        python.chmod(0o755)
        yield Runtime(python)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("warm", [False, True])
def test_a_slow_runtime_start_is_not_on_the_runs_clock(
    warm: bool, tmp_path: Path, synthetic_set: DataSet, slow_runtime: Runtime, slot: WarmSlot
) -> None:
    """Cold, or a warm sandbox taken while its runtime is still starting: the wall clock starts when
    the harness says hello, so the run is scored, not timed out or given back as the server's fault."""
    config = ScoringConfig(runtime=slow_runtime, limits=SHORT_WALL, smoke_limits=SHORT_WALL)
    if warm:
        assert slot.warm(check_spec(config, synthetic_set.train_data, synthetic_set.train_label))
    report = check_submission(
        make_zip(tmp_path / "z.zip", ZEROS),
        config=config,
        sample_data=synthetic_set.train_data,
        sample_labels=synthetic_set.train_label,
        warm=slot,
    )
    assert report.ok, report.to_json()
    assert slot.served == int(warm)
    assert report.facts.sandbox_seconds < SHORT_WALL.wall_seconds
    if not warm:  # the start-up was waited for, outside the run's wall clock
        assert report.facts.duration_s >= SLOW_START_SECONDS


def test_a_harness_that_does_not_start_within_its_bound_is_the_services_fault(
    tmp_path: Path, synthetic_set: DataSet, slow_runtime: Runtime
) -> None:
    """Nothing of the trainee's ran: the upload is given back, and the log names the start-up."""
    config = ScoringConfig(runtime=slow_runtime, limits=SHORT_WALL, startup_seconds=1.0)
    report = score(make_zip(tmp_path / "z.zip", ZEROS), synthetic_set, config, None)
    assert report.error is not None, report.to_json()
    assert report.error.code is ErrorCode.SANDBOX_UNAVAILABLE
    assert report.error.code.blame is Blame.SERVER
    assert "not ready within 1 s" in report.error.detail


KERAS_ZEROS = """import numpy as np
import keras

layers = [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(15, kernel_initializer="zeros")]
model = keras.Sequential(layers)


def predict(test_data):
    return np.argmax(model.predict(test_data.transpose(0, 2, 3, 1) / 255, verbose=0), axis=1)
"""


@pytest.fixture(scope="module")
def both() -> ScoringConfig:
    tensorflow = find_tensorflow_runtime()
    assert tensorflow is not None, "the TensorFlow runtime is not installed: run scripts/setup.sh --test"
    limits = dataclasses.replace(LIMITS, memory_bytes=2048 * MiB)  # TensorFlow maps about 1.5 GB
    return ScoringConfig(runtime=find_runtime(), tensorflow_runtime=tensorflow, limits=limits, smoke_limits=limits)


@pytest.mark.slow
def test_a_slot_keeps_one_warm_sandbox_per_runtime_and_each_job_takes_its_own(
    tmp_path: Path, synthetic_set: DataSet, both: ScoringConfig, slot: WarmSlot
) -> None:
    """Which runtime a job needs is known once its zip is read: the slot has both waiting."""
    for spec in scoring_specs(both, synthetic_set.small_data):
        assert slot.warm(spec)
    warm_ids = {name: box.run_id for name, box in slot.boxes.items()}
    assert set(warm_ids) == {RuntimeName.NUMPY, RuntimeName.TENSORFLOW}
    keras = score(make_zip(tmp_path / "keras.zip", KERAS_ZEROS), synthetic_set, both, slot)
    assert keras.status == "succeeded", keras.to_json()
    assert keras.runtime["name"] == "tensorflow" and keras.facts.run_id == warm_ids[RuntimeName.TENSORFLOW]
    numpy = score(make_zip(tmp_path / "numpy.zip", ZEROS), synthetic_set, both, slot)
    assert numpy.status == "succeeded", numpy.to_json()
    assert numpy.runtime["name"] == "numpy" and numpy.facts.run_id == warm_ids[RuntimeName.NUMPY]
    assert (slot.served, slot.missed, slot.discarded) == (2, 0, 0)
    slot.close()


def test_a_slot_keeps_warm_only_the_runtimes_it_is_given(synthetic_set: DataSet, both: ScoringConfig) -> None:
    slot = WarmSlot(runtimes=frozenset({RuntimeName.NUMPY}))
    numpy_spec, tensorflow_spec = scoring_specs(both, synthetic_set.small_data)
    assert not slot.keeps(tensorflow_spec) and not slot.warm(tensorflow_spec)
    assert slot.boxes == {}  # nothing was started for it
    assert slot.keeps(numpy_spec) and slot.warm(numpy_spec)
    assert set(slot.boxes) == {RuntimeName.NUMPY}
    slot.close()
