"""Attack the sandbox the way a hostile submission would, and report what got through.

The worker runs this at start (and admins via ``python -m scorer selftest``): a host update, a
Docker profile or a kernel setting can silently weaken bubblewrap, and we would rather refuse to
score than run hostile code in a leaky box. Each probe runs real code with a runtime's interpreter
inside the real sandbox; a probe passes only if the attack demonstrably failed *and* the probe
itself ran (a sandbox that cannot start anything would otherwise "block" everything).

In a runtime that preloads libraries (TensorFlow and Keras), the probes where they matter run with
them loaded and their thread pools started, as a submission would: the libraries probe (an operation
runs under the run's thread caps), the fork bomb (the pools' threads count against the pids limit
too) and the memory probe (TensorFlow's own memory is part of the run's). Their start-up, which
takes seconds, is off the wall clock as for a harness (the request's start-up bound).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scorer.runtime import Runtime
from scorer.sandbox.config import SandboxConfig, SandboxUnavailable
from scorer.sandbox.run import detect_accounting, detect_isolation, run_sandboxed
from scorer.sandbox.seccomp import compiled_filter
from scorer.sandbox.types import Isolation, Limits, MiB, SandboxOutcome, SandboxRequest, Termination

PROBE_LIMITS = Limits(wall_seconds=20, memory_bytes=1024 * MiB, processes=32, writable_bytes=16 * MiB)
# With TensorFlow loaded a process maps about 1.5 GB of address space (RLIMIT_AS counts it).
PRELOADED_MEMORY_BYTES = 2048 * MiB
# How long a probe's preloaded libraries may take to import (TensorFlow: tens of seconds under load).
PRELOAD_STARTUP_SECONDS = 300.0


@dataclass(frozen=True)
class ProbeResult:
    name: str
    passed: bool
    detail: str


@dataclass
class SelftestReport:
    probes: list[ProbeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.probes) and all(probe.passed for probe in self.probes)


def format_report(report: SelftestReport) -> str:
    """One line per probe, failures loud, and a verdict."""
    lines = []
    for probe in report.probes:
        mark = "ok  " if probe.passed else "FAIL"
        lines.append(f"[{mark}] {probe.name}: {probe.detail}")
    verdict = "sandbox selftest passed" if report.ok else "SANDBOX SELFTEST FAILED: do not score submissions"
    lines.append(verdict)
    return "\n".join(lines)


def run_selftest(config: SandboxConfig, runtime: Runtime) -> SelftestReport:
    report = SelftestReport()
    try:
        isolation = detect_isolation(config)
    except SandboxUnavailable as exc:
        report.probes.append(ProbeResult("isolation", False, f"sandbox unavailable: {exc}"))
        return report
    report.probes.append(
        ProbeResult(
            "isolation",
            isolation is Isolation.BWRAP,
            "bubblewrap" if isolation is Isolation.BWRAP else "UNSANDBOXED fallback: no isolation at all",
        )
    )
    report.probes.append(_seccomp_probe(config))
    try:
        report.probes.append(ProbeResult("accounting", True, detect_accounting(config).describe()))
    except SandboxUnavailable as exc:
        report.probes.append(ProbeResult("accounting", False, str(exc)))
        return report
    if isolation is not Isolation.BWRAP:
        # Fork bombs and ptrace on the bare host would attack the host itself: do not run them.
        report.probes.append(ProbeResult("attacks", False, "not run: there is no sandbox to attack"))
        return report
    probes = _Probes(config, runtime)
    checks: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        ("numpy", probes.numpy),
        *([("libraries", probes.libraries)] if runtime.preload else []),
        ("network", probes.network),
        ("environment", probes.environment),
        ("host files", probes.host_files),
        ("ptrace", probes.ptrace),
        ("daemon", probes.daemon),
        ("fork bomb", probes.fork_bomb),
        ("memory as a whole", probes.memory_as_a_whole),
        ("memory in files", probes.memory_in_files),
    ]
    for name, check in checks:
        try:
            passed, detail = check()
        except Exception as exc:  # a probe that crashes is a failed probe, not a crashed worker
            passed, detail = False, f"probe crashed: {type(exc).__name__}: {exc}"
        report.probes.append(ProbeResult(name, passed, detail))
    return report


def _seccomp_probe(config: SandboxConfig) -> ProbeResult:
    if not config.seccomp:
        return ProbeResult("seccomp", False, "disabled by configuration (SandboxConfig.seccomp=False)")
    compiled = compiled_filter()
    if not compiled.available:
        return ProbeResult("seccomp", False, compiled.error)
    skipped = f"; unknown to libseccomp: {', '.join(compiled.skipped)}" if compiled.skipped else ""
    return ProbeResult("seccomp", True, f"filter loaded ({len(compiled.bpf or b'')} bytes of BPF){skipped}")


def _alive_with_marker(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker``."""
    found = []
    needle = marker.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if needle in cmdline.read():
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _summary(outcome: SandboxOutcome) -> str:
    text = outcome.setup_error or outcome.log
    return f"{outcome.termination} (exit {outcome.exit_code}): {text.strip()[-500:]}"


def _prelude(preload: tuple[str, ...]) -> str:
    """Code that loads the runtime's libraries as a submission would, starts TensorFlow's thread pools
    (an operation), then says it is ready on fd 3 (the start-up bound ends there)."""
    code = "".join(f"import {module}\n" for module in preload)
    if "tensorflow" in preload:
        code += "import tensorflow as _tf\n_tf.reduce_sum(_tf.ones((64, 64)) @ _tf.ones((64, 64))).numpy()\n"
    return code + "import os as _os\n_os.write(3, b'ready')\n" if code else ""


class _Probes:
    def __init__(self, config: SandboxConfig, runtime: Runtime) -> None:
        self.config = config
        self.python = str(runtime.python)
        self.binds = runtime.binds()
        self.preload = runtime.preload
        self.prelude = _prelude(runtime.preload)
        # The limits of a probe that loads the libraries: room for their address space.
        self.loaded_limits = PROBE_LIMITS
        if self.prelude:
            self.loaded_limits = dataclasses.replace(PROBE_LIMITS, memory_bytes=PRELOADED_MEMORY_BYTES)

    def run(self, code: str, limits: Limits = PROBE_LIMITS, *, loaded: bool = False) -> SandboxOutcome:
        """Run ``code``; ``loaded``: after the runtime's libraries (see _prelude)."""
        preloading = loaded and bool(self.prelude)
        request = SandboxRequest(
            argv=[self.python, "-I", "-c", (self.prelude if preloading else "") + code],
            binds=self.binds,
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "TF_CPP_MIN_LOG_LEVEL": "2"},
            limits=limits,
            startup_seconds=PRELOAD_STARTUP_SECONDS if preloading else 0.0,
        )
        return run_sandboxed(request, self.config)

    def libraries(self) -> tuple[bool, str]:
        """The preloaded libraries work in the sandbox, their thread pools sized by the run's CPUs."""
        code = (
            "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
            "print('THREADS', int(status['Threads']))\n"
        )
        outcome = self.run(code, self.loaded_limits, loaded=True)
        ran = outcome.termination is Termination.EXITED and outcome.exit_code == 0 and "THREADS" in outcome.log
        if not ran:
            return False, _summary(outcome)
        threads = int(outcome.log.split("THREADS", 1)[1].split()[0])
        limit = self.loaded_limits.processes
        ok = threads < limit
        return ok, f"{', '.join(self.preload)} loaded and ran with {threads} threads (pids limit {limit})"

    def numpy(self) -> tuple[bool, str]:
        code = (
            "import numpy as np\n"
            "a = np.arange(12.0).reshape(3, 4); b = np.ones((4, 2))\n"
            "print('PRODUCT', (a @ b).sum())\n"
        )
        outcome = self.run(code)
        ok = outcome.termination is Termination.EXITED and outcome.exit_code == 0 and "PRODUCT 132.0" in outcome.log
        return ok, "numpy imports and multiplies" if ok else _summary(outcome)

    def network(self) -> tuple[bool, str]:
        server = socket.create_server(("127.0.0.1", 0))
        server.settimeout(0.1)
        port = server.getsockname()[1]
        reached = threading.Event()
        done = threading.Event()

        def accept() -> None:
            while not done.is_set():
                try:
                    connection, _ = server.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                reached.set()
                connection.close()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n"
            "    print('LOOPBACK REACHED')\n"
            "except OSError as e:\n"
            "    print('LOOPBACK BLOCKED', e)\n"
            "try:\n"
            "    socket.getaddrinfo('example.com', 80); print('DNS RESOLVED')\n"
            "except OSError as e:\n"
            "    print('DNS BLOCKED', e)\n"
        )
        try:
            outcome = self.run(code)
        finally:
            done.set()
            thread.join(timeout=5)
            server.close()
        ran = outcome.termination is Termination.EXITED and outcome.exit_code == 0
        blocked = "LOOPBACK BLOCKED" in outcome.log and "DNS BLOCKED" in outcome.log
        if ran and blocked and not reached.is_set():
            return True, "host loopback service and DNS unreachable"
        return False, f"server reached={reached.is_set()}; " + _summary(outcome)

    def environment(self) -> tuple[bool, str]:
        name = "KATAKANA_SELFTEST_CANARY"
        value = f"canary-{secrets.token_hex(8)}"
        previous = os.environ.get(name)
        os.environ[name] = value
        code = (
            "import os, glob\n"
            f"needle = {value!r}\n"
            "hits = [k for k, v in os.environ.items() if needle in v or needle in k]\n"
            "for path in glob.glob('/proc/*/environ'):\n"
            "    try:\n"
            "        if needle.encode() in open(path, 'rb').read(): hits.append(path)\n"
            "    except OSError:\n"
            "        pass\n"
            "print('FOUND', hits) if hits else print('CLEAN')\n"
        )
        try:
            outcome = self.run(code)
        finally:
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
        ok = outcome.termination is Termination.EXITED and outcome.exit_code == 0 and "CLEAN" in outcome.log
        return ok, "the worker's environment is invisible" if ok else _summary(outcome)

    def host_files(self) -> tuple[bool, str]:
        directory = Path(tempfile.mkdtemp(prefix="katakana-selftest-"))
        try:
            directory.chmod(0o755)
            canary = directory / "canary.txt"
            canary.write_text("host secret")
            canary.chmod(0o644)
            paths = [str(canary), "/etc/shadow", "/etc/hostname", "/root", "/home", str(Path.cwd())]
            code = (
                "import os\n"
                f"seen = [p for p in {paths!r} if os.path.exists(p) and p not in ('/', '/tmp', '/usr')]\n"
                "print('SEEN', seen) if seen else print('HIDDEN')\n"
            )
            outcome = self.run(code)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        ok = outcome.termination is Termination.EXITED and outcome.exit_code == 0 and "HIDDEN" in outcome.log
        return ok, "host files are invisible" if ok else _summary(outcome)

    def ptrace(self) -> tuple[bool, str]:
        code = (
            "import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "rc = libc.ptrace(16, 1, None, None)\n"  # PTRACE_ATTACH
            "print('PTRACE', rc, os.strerror(ctypes.get_errno()))\n"
        )
        outcome = self.run(code)
        ran = outcome.termination is Termination.EXITED and outcome.exit_code == 0
        ok = ran and "PTRACE -1" in outcome.log
        return ok, "PTRACE_ATTACH to PID 1 denied" if ok else _summary(outcome)

    def daemon(self) -> tuple[bool, str]:
        marker = f"{900 + secrets.randbelow(99)}.{secrets.randbelow(10**9):09d}"
        code = (
            "import os, time\n"
            "r, w = os.pipe()\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        os.close(r)\n"
            "        for fd in (0, 1, 2): os.close(fd)\n"
            "        os.write(w, b'x'); os.close(w)\n"
            f"        os.execv('/usr/bin/sleep', ['sleep', {marker!r}])\n"
            "    os._exit(0)\n"
            "os.close(w); os.read(r, 1)\n"
            "print('DAEMON STARTED')\n"
        )
        outcome = self.run(code)
        started = outcome.termination is Termination.EXITED and "DAEMON STARTED" in outcome.log
        survivors = _alive_with_marker(marker)
        if started and not survivors:
            return True, "a setsid double-forked daemon died with the run"
        return False, f"survivors={survivors}; " + _summary(outcome)

    def memory_as_a_whole(self) -> tuple[bool, str]:
        """Three processes of 96 MiB each under a 192 MiB limit: each fits RLIMIT_AS, together not."""
        code = (
            "import os, time\n"
            "for _ in range(3):\n"
            "    if os.fork() == 0:\n"
            "        block = bytearray(96 * 1024 * 1024); time.sleep(60); os._exit(0)\n"
            "for _ in range(3): os.wait()\n"
            "print('ALL HELD')\n"
        )
        limits = dataclasses.replace(PROBE_LIMITS, memory_bytes=192 * MiB)
        if self.prelude:
            # Over the libraries' own memory: three fresh interpreters of 640 MiB each fit RLIMIT_AS
            # alone (a fork would inherit TensorFlow's address space), not the run's memory together.
            code = (
                "import subprocess, sys\n"
                "hold = 'import time; block = bytearray(640 * 1024 * 1024); time.sleep(60)'\n"
                "children = [subprocess.Popen([sys.executable, '-I', '-c', hold]) for _ in range(3)]\n"
                "for child in children: child.wait()\n"
                "print('ALL HELD')\n"
            )
            limits = self.loaded_limits
        outcome = self.run(code, limits, loaded=True)
        ok = outcome.termination is Termination.MEMORY_LIMIT and "ALL HELD" not in outcome.log
        return ok, f"stopped as memory_limit by the {outcome.accounting}" if ok else _summary(outcome)

    def memory_in_files(self) -> tuple[bool, str]:
        """40 MiB into each writable mount under a 96 MiB limit (and /dev, which must refuse): files are
        memory too. Without a cgroup this fails where the worker cannot read the run's mounts."""
        code = (
            "import time\n"
            "for folder in ('/dev', '/tmp', '/work', '/dev/shm'):\n"
            "    try:\n"
            "        with open(folder + '/filler', 'wb') as f:\n"
            "            for _ in range(40): f.write(b'x' * (1 << 20))\n"
            "    except OSError as e:\n"
            "        print('REFUSED', folder, e.errno, flush=True)\n"
            "time.sleep(60)\n"
        )
        limits = dataclasses.replace(PROBE_LIMITS, memory_bytes=96 * MiB, writable_bytes=128 * MiB)
        outcome = self.run(code, limits)
        # The process itself holds a few MiB: only the files can take it over the limit.
        ok = outcome.termination is Termination.MEMORY_LIMIT and "REFUSED /dev 30" in outcome.log
        return ok, f"/dev read-only, tmpfs counted by the {outcome.accounting}" if ok else _summary(outcome)

    def fork_bomb(self) -> tuple[bool, str]:
        marker = f"forkbomb-{secrets.token_hex(6)}"
        code = (
            f"import os, time  # {marker}\n"
            "n = 0\n"
            "try:\n"
            f"    while n < {4 * PROBE_LIMITS.processes}:\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(600); os._exit(0)\n"
            "        n += 1\n"
            "except OSError as e:\n"
            "    print('STOPPED', n, e)\n"
            "else:\n"
            "    print('UNBOUNDED', n)\n"
        )
        outcome = self.run(code, self.loaded_limits, loaded=True)  # the pools' threads count too
        limit = PROBE_LIMITS.processes
        survivors = _alive_with_marker(marker)
        bounded = "STOPPED" in outcome.log and outcome.termination is Termination.EXITED
        if bounded and not survivors:
            return True, f"forking stopped below {limit} processes and nothing survived"
        return False, f"survivors={len(survivors)}; " + _summary(outcome)
