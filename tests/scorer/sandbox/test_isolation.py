"""What the sandboxed code can see and reach: nothing of the host beyond the system dirs and binds."""

from __future__ import annotations

from pathlib import Path

from scorer.sandbox import DataFile, Termination
from scorer.sandbox.types import MiB
from tests.scorer.conftest import LoopbackServer

from .conftest import RunPy

REPO = Path(__file__).resolve().parents[3]


def test_host_files_are_invisible(run_py: RunPy, shared_dir: Path) -> None:
    canary = shared_dir / "canary.txt"
    canary.write_text("host secret")
    canary.chmod(0o644)
    paths = [
        str(canary),
        str(shared_dir),
        "/etc/shadow",
        "/etc/passwd-",
        "/etc/hostname",
        "/root",
        "/home",
        str(REPO),
        str(REPO / "pyproject.toml"),
        "/sys",
        "/var",
        "/run",
    ]
    code = f"import os\nprint('SEEN', [p for p in {paths!r} if os.path.exists(p)])\n"
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "SEEN []" in outcome.log


def test_etc_is_minimal_and_names_no_host_account(run_py: RunPy) -> None:
    code = "import os, pwd\nprint(sorted(os.listdir('/etc')), pwd.getpwuid(os.getuid()).pw_name)\n"
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "'shadow'" not in outcome.log
    assert "sandbox" in outcome.log
    passwd = run_py("print(open('/etc/passwd').read())").log
    assert {line.split(":")[0] for line in passwd.split()} <= {"root", "sandbox", "nobody"}


def test_the_root_and_usr_are_read_only(run_py: RunPy) -> None:
    code = (
        "import errno\n"
        "for path in ('/usr/evil', '/evil', '/etc/evil', '/bin/evil'):\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "        print('WROTE', path)\n"
        "    except OSError as e:\n"
        "        print('DENIED', path, errno.errorcode[e.errno])\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "WROTE" not in outcome.log
    assert outcome.log.count("DENIED") == 4


def test_a_data_file_is_read_only_and_names_no_host_path(run_py: RunPy) -> None:
    # A bind would show its host source in mountinfo; a data file is bwrap's own copy.
    code = (
        "print(open('/harness/tool.py').read())\n"
        "try:\n"
        "    open('/harness/tool.py', 'w')\n"
        "except OSError as e:\n"
        "    print('READ-ONLY', e.errno)\n"
        "print([line.split()[3] for line in open('/proc/self/mountinfo') if ' /harness/tool.py ' in line])\n"
    )
    outcome = run_py(code, files=[DataFile("/harness/tool.py", b"DATA FILE CONTENT")])
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "DATA FILE CONTENT" in outcome.log
    assert "READ-ONLY 30" in outcome.log
    assert "['/bindfile" in outcome.log


def test_dev_holds_only_harmless_devices_and_is_read_only(run_py: RunPy) -> None:
    # bwrap's own /dev was an unsized tmpfs anyone could fill (RAM no limit counted), with /dev/zero,
    # whose shared mappings are memory a poller cannot see.
    code = (
        "import os\n"
        "print('DEV', sorted(os.listdir('/dev')))\n"
        "try:\n"
        "    open('/dev/filler', 'wb').write(b'x'); print('WROTE /dev')\n"
        "except OSError as e:\n"
        "    print('READ-ONLY', e.errno)\n"
        "open('/dev/null', 'wb').write(b'discarded'); print('NULL', len(open('/dev/urandom', 'rb').read(8)))\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "DEV ['fd', 'full', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'urandom']" in outcome.log
    assert "READ-ONLY 30" in outcome.log  # EROFS
    assert "NULL 8" in outcome.log


def test_host_loopback_service_is_unreachable(run_py: RunPy, loopback_server: LoopbackServer) -> None:
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {loopback_server.port}), timeout=5)\n"
        "    print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('REFUSED', e)\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "REFUSED" in outcome.log
    assert not loopback_server.connected.is_set()


def test_no_dns_and_no_route_outside(run_py: RunPy) -> None:
    code = (
        "import socket\n"
        "for name in ('example.com', 'localhost.localdomain'):\n"
        "    try:\n"
        "        socket.getaddrinfo(name, 80); print('RESOLVED', name)\n"
        "    except OSError as e:\n"
        "        print('NO DNS', name)\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=5); print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('NO ROUTE', e)\n"
        "print('IFACES', [line.split(':')[0].strip() for line in open('/proc/net/dev').readlines()[2:]])\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "RESOLVED" not in outcome.log
    assert "CONNECTED" not in outcome.log
    assert "IFACES ['lo']" in outcome.log


def test_writable_dirs_are_sized_tmpfs(run_py: RunPy) -> None:
    code = (
        "import os\n"
        "for d in ('/tmp', '/work', '/dev/shm'):\n"
        "    written = 0\n"
        "    try:\n"
        "        with open(os.path.join(d, 'fill'), 'wb') as f:\n"
        "            while written < 64 * 1024 * 1024:\n"
        "                f.write(b'x' * 65536); f.flush(); written += 65536\n"
        "    except OSError as e:\n"
        "        print('STOPPED', d, written // (1024 * 1024), e.errno)\n"
        "    else:\n"
        "        print('FILLED', d)\n"
        "    os.remove(os.path.join(d, 'fill'))\n"
    )
    outcome = run_py(code, writable_bytes=8 * MiB)
    assert outcome.termination is Termination.EXITED, outcome.log
    assert "FILLED" not in outcome.log
    assert outcome.log.count("STOPPED") == 3


def test_hostname_and_pid_namespace_are_private(run_py: RunPy) -> None:
    code = (
        "import os, socket\nprint(socket.gethostname(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
    )
    outcome = run_py(code)
    assert outcome.termination is Termination.EXITED, outcome.log
    hostname, pids = outcome.log.split(" ", 1)
    assert hostname == "sandbox"
    assert pids.strip() == "[1, 2]"  # PID 1 (timeout) and this process
