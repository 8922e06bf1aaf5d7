"""The golden corpus of hostile submissions, run through the real pipeline and the real sandbox.

Each folder under hostile/ is one case: a submit_katakana.py and case.json with the expected outcome
(and strings the log must or must not show, or the error's reason must contain). A case runs with the
host's own accounting (a control group per run where the host has one); one whose case.json lists
``"accounting": ["host", "supervisor"]`` runs with the polling supervisor forced too, the mode of a
worker without a writable cgroup, and must end the same way in both. Beyond that, every
case must leave the host untouched: no process of the run alive afterwards, no canary secret or label
file seen, a host process still alive. And every case must stay within what a hidden-set run may
reveal: at most the excerpt of its output, and the blame on the submission (no case here may get its
upload back).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scorer.disclosure import RESERVED_BYTES, Disclosure, params_bytes
from scorer.errors import Blame
from scorer.pipeline import ScoringConfig, score_submission, scoring_spec
from scorer.runtime import find_runtime
from scorer.sandbox import SandboxConfig, detect_accounting
from scorer.sandbox.cgroup import Accounting
from scorer.sandbox.types import Limits, MiB
from scorer.warm import WarmSlot
from tests.fixtures.artifacts import DataSet
from tests.scorer.conftest import LoopbackServer
from tests.scorer.procs import processes_with_environ

pytestmark = pytest.mark.sandbox  # the corpus runs in the real sandbox

HOSTILE = Path(__file__).parent / "hostile"
CASES = sorted(p.name for p in HOSTILE.iterdir() if (p / "case.json").exists())
CASE_MODES = [
    (case, mode)
    for case in CASES
    for mode in json.loads((HOSTILE / case / "case.json").read_text()).get("accounting", ["host"])
]
CANARY_ENV = "KATAKANA_TEST_SECRET"

HOSTILE_LIMITS = Limits(
    wall_seconds=15.0,
    memory_bytes=1024 * MiB,
    processes=64,
    writable_bytes=64 * MiB,
    output_bytes=1 * MiB,
)


@pytest.fixture
def host_sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("path", ["cold", "warm"])
@pytest.mark.parametrize(("case", "accounting"), CASE_MODES)
def test_hostile_submission(
    case: str,
    accounting: str,
    path: str,
    tmp_path: Path,
    synthetic_set: DataSet,
    loopback_server: LoopbackServer,
    host_sleeper: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = json.loads((HOSTILE / case / "case.json").read_text())
    secret = uuid.uuid4().hex
    monkeypatch.setenv(CANARY_ENV, secret)  # the worker's own environment: must never be visible
    marker = f"katakana-daemon-{uuid.uuid4().hex}"
    archive = tmp_path / f"{case}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(HOSTILE / case / "submit_katakana.py", f"{case}/submit_katakana.py")
        zf.writestr(f"{case}/port.txt", str(loopback_server.port))
        zf.writestr(f"{case}/marker.txt", marker)

    sandbox = SandboxConfig(cgroup_mode="supervisor") if accounting == "supervisor" else SandboxConfig()
    config = ScoringConfig(runtime=find_runtime(), sandbox=sandbox, limits=HOSTILE_LIMITS, smoke_limits=HOSTILE_LIMITS)
    slot = WarmSlot()
    if path == "warm":  # started before the zip is known, as a worker's next run is
        assert slot.warm(scoring_spec(config, synthetic_set.small_data))
    try:
        report = score_submission(
            archive, test_data=synthetic_set.small_data, test_labels=synthetic_set.small_label, config=config, warm=slot
        )
    finally:
        slot.close()
    assert slot.served == (1 if path == "warm" else 0)
    result = report.to_json()
    assert report.facts.isolation == "bwrap", "the hostile corpus must run in the real sandbox"
    if accounting == "supervisor":
        assert detect_accounting(sandbox).accounting is Accounting.SUPERVISOR
    assert report.status == expected["status"], result
    if "code" in expected:
        assert report.error is not None and report.error.code.value == expected["code"], result
    for text in expected.get("log_contains", []):
        assert text in report.log, result
    for text in expected.get("log_lacks", []):
        assert text not in report.log, result
    if "reason_contains" in expected:
        assert report.error is not None and expected["reason_contains"] in report.error.params["reason"], result
    assert secret not in report.log

    # What the trainee may see of it: the excerpt (log, traceback and parameters together), and
    # the blame on the submission.
    disclosure = Disclosure()
    assert disclosure.excerpt_bytes is not None
    shown = len(report.log.encode()) + (params_bytes(report.error.params) if report.error else 0)
    assert shown <= disclosure.excerpt_bytes + RESERVED_BYTES, result
    assert len(report.staff_log.encode()) <= disclosure.stored_bytes + RESERVED_BYTES
    assert len(json.dumps(result).encode()) <= 4 * disclosure.excerpt_bytes + 4 * RESERVED_BYTES + 8192
    if report.error is not None:
        assert report.error.code.blame is Blame.SUBMISSION, result

    # The host is untouched.
    assert not loopback_server.connected.is_set()
    assert host_sleeper.poll() is None, "a host process was killed"
    assert processes_with_environ(f"KATAKANA_RUN_ID={report.facts.run_id}") == []
    assert processes_with_cmdline(marker) == []


def processes_with_cmdline(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline and int(entry) != os.getpid():
            found.append(int(entry))
    return found
