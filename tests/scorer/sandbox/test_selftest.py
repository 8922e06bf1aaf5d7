"""The selftest passes on a sound sandbox and fails loudly without one."""

from __future__ import annotations

import dataclasses

import pytest

from scorer.runtime import Runtime, find_tensorflow_runtime
from scorer.sandbox import SandboxConfig
from scorer.sandbox.selftest import ProbeResult, SelftestReport, format_report, run_selftest


def test_selftest_passes_on_this_host(config: SandboxConfig, runtime: Runtime) -> None:
    report = run_selftest(config, runtime)
    assert report.ok, format_report(report)
    names = {probe.name for probe in report.probes}
    assert {"network", "environment", "host files", "ptrace", "daemon", "fork bomb", "numpy"} <= names
    assert {"accounting", "memory as a whole", "memory in files"} <= names
    accounting = next(probe for probe in report.probes if probe.name == "accounting")
    assert accounting.detail.split(":")[0] in ("cgroup-v2", "cgroup-v1", "supervisor")


@pytest.mark.slow
def test_selftest_passes_in_the_tensorflow_runtime_with_its_libraries_loaded(config: SandboxConfig) -> None:
    """The same attacks, and TensorFlow's thread pools under the pids limit and its memory in the run's."""
    tensorflow = find_tensorflow_runtime()
    assert tensorflow is not None, "the TensorFlow runtime is not installed: run scripts/setup.sh --test"
    report = run_selftest(config, tensorflow)
    assert report.ok, format_report(report)
    text = format_report(report)
    assert "[ok  ] libraries: tensorflow, keras loaded and ran with" in text
    for name in ("network", "environment", "host files", "ptrace", "daemon", "fork bomb", "memory as a whole"):
        assert f"[ok  ] {name}: " in text


def test_selftest_reports_a_forced_supervisor_and_it_holds(config: SandboxConfig, runtime: Runtime) -> None:
    report = run_selftest(dataclasses.replace(config, cgroup_mode="supervisor"), runtime)
    assert report.ok, format_report(report)
    assert "[ok  ] accounting: supervisor" in format_report(report)
    assert "selftest passed" in format_report(report)


def test_selftest_fails_without_a_sandbox(runtime: Runtime) -> None:
    report = run_selftest(SandboxConfig(mode="unsandboxed"), runtime)
    assert not report.ok
    assert "FAIL" in format_report(report)
    assert "SANDBOX SELFTEST FAILED" in format_report(report)


def test_an_empty_or_failed_report_is_not_ok() -> None:
    assert not SelftestReport().ok
    assert not SelftestReport([ProbeResult("a", True, ""), ProbeResult("b", False, "leak")]).ok
