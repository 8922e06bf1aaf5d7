"""The selftest passes on a sound sandbox and fails loudly without one."""

from __future__ import annotations

import dataclasses

from scorer.runtime import Runtime
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
