"""The selftest passes on a sound sandbox and fails loudly without one."""

from __future__ import annotations

from scorer.runtime import Runtime
from scorer.sandbox import SandboxConfig
from scorer.sandbox.selftest import ProbeResult, SelftestReport, format_report, run_selftest


def test_selftest_passes_on_this_host(config: SandboxConfig, runtime: Runtime) -> None:
    report = run_selftest(config, runtime)
    assert report.ok, format_report(report)
    names = {probe.name for probe in report.probes}
    assert {"network", "environment", "host files", "ptrace", "daemon", "fork bomb", "numpy"} <= names
    assert "selftest passed" in format_report(report)


def test_selftest_fails_without_a_sandbox(runtime: Runtime) -> None:
    report = run_selftest(SandboxConfig(mode="unsandboxed"), runtime)
    assert not report.ok
    assert "FAIL" in format_report(report)
    assert "SANDBOX SELFTEST FAILED" in format_report(report)


def test_an_empty_or_failed_report_is_not_ok() -> None:
    assert not SelftestReport().ok
    assert not SelftestReport([ProbeResult("a", True, ""), ProbeResult("b", False, "leak")]).ok
