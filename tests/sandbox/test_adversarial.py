"""Hostile programs: each must score no pass, end within its wall limit + 1 s, and leave the
host alone (files, the test process, an unrelated process, no stray processes).

Every case runs once, in parallel, with the real isolation of this machine; a case that
only isolation can defeat (reading the host's files, the network, signalling host processes)
is skipped with the reason where the namespaces are unavailable.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

import bgpo_lightning
from bgpo_lightning.sandbox import SandboxJob, SandboxLimits, Status, run_many
from bgpo_lightning.sandbox.isolation import fully_isolated, isolation_report

LIMITS = SandboxLimits(wall_seconds=2, cpu_seconds=1, memory_bytes=256 << 20, max_processes=16)
README = Path(bgpo_lightning.__file__).resolve().parents[1] / "README.md"
SECRET = "SECRET-" + secrets.token_hex(8)
CANARY_TEXT = "canary " + secrets.token_hex(8)
UID_RANGE = (1 << 27, (1 << 30) + 1)  # the runner's fresh user ids, see runner._UID_RANGE

LAYERS = isolation_report()
ISOLATED = fully_isolated(LAYERS)
NOT_ISOLATED = "namespaces unavailable here: " + "; ".join(
    f"{k}: {v}" for k, v in LAYERS.items() if not v.startswith("on")
)


def generic_cases() -> dict[str, SandboxJob]:
    """Attacks on the verdict itself: they must fail with or without namespaces."""
    return {
        "infinite_loop": SandboxJob("while True:\n    pass\n", "assert f() == 1"),
        "sleep_forever": SandboxJob("import time\ntime.sleep(1000)\n", "assert f() == 1"),
        "loop_in_call": SandboxJob("def f():\n    while True:\n        pass\n", "assert f() == 1"),
        "memory_bomb": SandboxJob("x = [bytearray(10**7) for _ in range(1000)]\n", "assert f()"),
        "sys_exit_0": SandboxJob("import sys\nsys.exit(0)\n", "assert f() == 1"),
        "os_exit_0": SandboxJob("import os\nos._exit(0)\n", "assert f() == 1"),
        "os_exit_in_call": SandboxJob("import os\ndef f():\n    os._exit(0)\n", "assert f() == 1"),
        "exit_from_thread": SandboxJob(
            "import os, threading\n"
            "threading.Thread(target=lambda: os._exit(0)).start()\n"
            "def f():\n    return 0\n",
            "assert f() == 1",
        ),
        "huge_stdout": SandboxJob("while True:\n    print('x' * 65536)\n", "assert f() == 1"),
        "huge_stderr": SandboxJob(
            "import sys\nwhile True:\n    sys.stderr.write('y' * 65536)\n", "assert f() == 1"
        ),
        "print_pass": SandboxJob(
            'print(\'All tests passed\\nPASSED\\n{"kind": "verdict", "passed": true}\')\n'
            "import os\nos._exit(0)\n",
            "assert f() == 1",
        ),
        "fake_verdict_on_every_fd": SandboxJob(
            "import os\n"
            "for fd in range(256):\n"
            "    try:\n"
            '        os.write(fd, b\'{"kind": "verdict", "passed": true}\\n\')\n'
            "    except OSError:\n"
            "        pass\n"
            "def f():\n    return 0\n",
            "assert f() == 1",
        ),
        "override_builtins": SandboxJob(
            "import builtins, sys, os\n"
            "class Never(Exception):\n    pass\n"
            "builtins.AssertionError = Never\n"
            "builtins.len = lambda x: 3\n"
            "builtins.print = lambda *a, **k: None\n"
            "sys.exit = os._exit = lambda *a: None\n"
            "builtins.__import__ = lambda *a, **k: None\n"
            "def f():\n    return []\n",
            "assert len(f()) == 3\nassert f() == [1]",
        ),
        "shadow_builtins_globally": SandboxJob(
            "def len(x):\n    return 3\ndef sorted(x):\n    return [1, 2, 3]\n"
            "def f():\n    return [3, 1]\n",
            "assert len(f()) == 3\nassert sorted(f()) == [1, 2, 3]",
        ),
        "always_equal": SandboxJob(
            "class Eq:\n"
            "    def __eq__(self, other): return True\n"
            "    def __ne__(self, other): return False\n"
            "    def __bool__(self): return True\n"
            "    def __hash__(self): return 0\n"
            "def f(*args):\n    return Eq()\n",
            "assert f(1) == 5\nassert not f(2) != 6\nassert f(3)",
        ),
        "equal_subclasses": SandboxJob(
            "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
            "class S(str):\n    def __eq__(self, o): return True\n    __hash__ = str.__hash__\n"
            "class L(list):\n    def __eq__(self, o): return True\n"
            "def f(k):\n    return [I(0), S(''), L()][k]\n",
            "assert f(0) == 7\nassert f(1) == 'abc'\nassert f(2) == [1, 2]",
        ),
        "stop_iteration_ends_loop": SandboxJob(
            "def f(x):\n    raise StopIteration\n",
            "assert all(map(lambda v: f(v) == v, [1, 2, 3]))",
        ),
        "peek_caller_frames": SandboxJob(
            "import sys, gc\n"
            "def f():\n"
            "    frame = sys._getframe(1)\n"
            "    while frame is not None:\n"
            "        for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):\n"
            "            if isinstance(value, str) and value.startswith('SECRET-'):\n"
            "                return value\n"
            "        frame = frame.f_back\n"
            "    for obj in gc.get_objects():\n"
            "        if isinstance(obj, str) and obj.startswith('SECRET-'):\n"
            "            return obj\n"
            "    return None\n",
            f"expected = {SECRET!r}\nassert f() == expected",
        ),
        **helper_cases(),
        "raise_own_limits": SandboxJob(
            "import resource\n"
            "for kind in (resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_NPROC):\n"
            "    try:\n"
            "        resource.setrlimit(kind, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
            "    except (ValueError, OSError):\n"
            "        pass\n"
            "while True:\n    pass\n",
            "assert f() == 1",
        ),
    }


# Swaps a method of a built-in type in the program's process ("curse"-style).
PATCH_TYPE = (
    "import ctypes, gc\n"
    "def patch(kind, name, method):\n"
    "    gc.get_referents(kind.__dict__)[0][name] = method\n"
    "    ctypes.pythonapi.PyType_Modified(ctypes.py_object(kind))\n"
)


def helper_cases() -> dict[str, SandboxJob]:
    """Attacks on the trusted setup (helpers the tests call, objects they pass): the program
    redefines, wraps or patches its copy, or mutates what it is given. Each would pass if
    the helpers ran in the program's process or the objects were shared."""
    total = "def total(xs):\n    return sum(xs)\n"
    return {
        "redefine_setup_helper": SandboxJob(
            "def double(x):\n    return x\ndef f(y):\n    return y\n",
            "for v in range(1, 5):\n    assert f(double(v)) == v\n",
            setup="def double(x):\n    return 2 * x\n",
        ),
        "wrap_setup_helper_and_record": SandboxJob(
            "seen = {}\n"
            "def double(x):\n    seen[2 * x] = x\n    return 2 * x\n"
            "def f(y):\n    return seen.get(y, y)\n",
            "for v in range(1, 5):\n    assert f(double(v)) == v\n",
            setup="def double(x):\n    return 2 * x\n",
        ),
        "redefine_setup_value": SandboxJob(
            "expected = 5\ndef f():\n    return 5\n",
            "assert f() == expected\n",
            setup="expected = 4\n",
        ),
        "patch_module_used_by_setup": SandboxJob(
            "import math\nmath.sqrt = lambda x: 0.0\ndef f(x):\n    return 0.0\n",
            "for v in (4.0, 9.0):\n    assert f(v) == root(v)\n",
            setup="import math\ndef root(x):\n    return math.sqrt(x)\n",
        ),
        "patch_builtin_used_by_setup": SandboxJob(
            "import builtins\nbuiltins.sum = lambda xs, start=0: 0\ndef f(xs):\n    return 0\n",
            "assert f([1, 2, 3]) == total([1, 2, 3])\n",
            setup=total,
        ),
        "patch_list_method_used_by_setup": SandboxJob(
            PATCH_TYPE + "patch(list, 'sort', lambda self, **kw: None)\n"
            "def f(xs):\n    return xs\n",
            "assert f([3, 1, 2]) == ordered([3, 1, 2])\n",
            setup="def ordered(xs):\n    out = list(xs)\n    out.sort()\n    return out\n",
        ),
        "patch_str_method_used_by_setup": SandboxJob(
            PATCH_TYPE + "patch(str, 'upper', lambda self: self)\ndef f(s):\n    return s\n",
            "assert f('abc') == shout('abc')\n",
            setup="def shout(s):\n    return s.upper()\n",
        ),
        "mutate_argument": SandboxJob(
            "def f(xs):\n    xs.clear()\n    return 0\n",
            "xs = [1, 2, 3]\nassert f(xs) == total(xs)\n",
            setup=total,
        ),
        "mutate_setup_object": SandboxJob(
            "def f(box):\n    box.items = []\n    return 0\n",
            "assert f(box) == total(box.items)\n",
            setup=total + "class Box:\n    pass\nbox = Box()\nbox.items = [1, 2, 3]\n",
        ),
    }


def isolation_cases(canary: Path, port: int) -> dict[str, SandboxJob]:
    """Attacks on the host: only the namespaces, user ids and seccomp stop them."""
    first_line = README.read_text().splitlines()[0]
    canary_file = canary / "canary.txt"
    return {
        "fork_bomb": SandboxJob(
            "import os\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        pass\n",
            "assert f() == 1",
        ),
        "daemon_escape": SandboxJob(
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(30)\n"
            "    os._exit(0)\n"
            "def f():\n    return 0\n",
            "assert f() == 1",
        ),
        "read_repository": SandboxJob(
            f"def f():\n    return open({str(README)!r}).read().splitlines()[0]\n",
            f"assert f() == {first_line!r}",
        ),
        "read_canary": SandboxJob(
            f"def f():\n    return open({str(canary_file)!r}).read()\n",
            f"assert f() == {CANARY_TEXT!r}",
        ),
        "list_host_dirs": SandboxJob(
            "import os\n"
            "def f():\n"
            "    found = []\n"
            "    for path in ('/work', '/home', '/tmp/pytest-of-root', "  # /root holds the
            f"{str(canary)!r}):\n"  # interpreter's prefix when it lives there (pyenv)
            "        try:\n"
            "            found += os.listdir(path)\n"
            "        except OSError:\n"
            "            pass\n"
            "    return found\n",
            "assert f()",
        ),
        "write_outside": SandboxJob(
            "import os\n"
            "def f():\n"
            "    done = 0\n"
            f"    for path in ({str(canary_file)!r}, {str(canary / 'new.txt')!r}, '/etc/x', "
            "'/usr/x', '/x', '/dev/shm/x'):\n"
            "        try:\n"
            "            with open(path, 'w') as out:\n"
            "                out.write('pwned')\n"
            "            done += 1\n"
            "        except OSError:\n"
            "            pass\n"
            "    return done\n",
            "assert f() > 0",
        ),
        "delete_files": SandboxJob(
            "import os, shutil\n"
            "def f():\n"
            f"    existed = os.path.exists({str(canary_file)!r})\n"
            f"    shutil.rmtree({str(canary)!r}, ignore_errors=True)\n"
            f"    gone = not os.path.exists({str(canary_file)!r})\n"
            "    return 'deleted' if existed and gone else 'kept'\n",
            "assert f() == 'deleted'",
        ),
        "network_loopback": SandboxJob(
            "import socket\n"
            "def f():\n"
            "    for family, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):\n"
            "        try:\n"
            f"            socket.create_connection((host, {port}), timeout=0.5).close()\n"
            "            return 'connected'\n"
            "        except OSError:\n"
            "            pass\n"
            "    return 'refused'\n",
            "assert f() == 'connected'",
        ),
        "raw_sockets": SandboxJob(
            "import socket\n"
            "def f():\n"
            "    made = 0\n"
            "    for args in ((socket.AF_NETLINK, socket.SOCK_RAW, 0), (socket.AF_PACKET, "
            "socket.SOCK_RAW, 0), (socket.AF_INET, socket.SOCK_DGRAM, 0)):\n"
            "        try:\n"
            "            socket.socket(*args).close()\n"
            "            made += 1\n"
            "        except OSError:\n"
            "            pass\n"
            "    return made\n",
            "assert f() > 0",
        ),
        "kill_parent_and_all": SandboxJob(
            "import os, signal\n"
            "for pid in (os.getppid(), -1, 0, 1):\n"
            "    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError:\n"
            "        pass\n"
            "def f():\n    return 0\n",
            "assert f() == 1",
        ),
        "kill_all_during_tests": SandboxJob(
            "import os, signal\n"
            "def f():\n"
            "    for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
            "        try:\n"
            "            os.kill(-1, sig)\n"
            "        except OSError:\n"
            "            pass\n"
            "    return 0\n",
            "assert f() == 1",
        ),
        "read_harness_memory": SandboxJob(
            "import os\n"
            "def f():\n"
            "    for pid in os.listdir('/proc'):\n"
            "        if not pid.isdigit():\n"
            "            continue\n"
            "        for name in ('cmdline', 'environ', 'mem'):\n"
            "            try:\n"
            "                with open(f'/proc/{pid}/{name}', 'rb') as fh:\n"
            "                    data = fh.read(1 << 20)\n"
            "            except OSError:\n"
            "                continue\n"
            "            at = data.find(b'SECRET-')\n"
            "            if at >= 0:\n"
            "                return data[at:at + 23].decode()\n"
            "    return None\n",
            f"assert f() == {SECRET!r}",
        ),
        "namespaces_and_privileges": SandboxJob(
            "import ctypes, os\n"
            "def f():\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    escaped = []\n"
            "    if libc.unshare(0x10000000 | 0x00020000) == 0:\n"
            "        escaped.append('unshare')\n"
            "    for call in (lambda: os.setuid(0), lambda: os.chroot('/'),\n"
            "                 lambda: os.mknod('/tmp/dev', 0o20666, os.makedev(1, 3))):\n"
            "        try:\n"
            "            call()\n"
            "            escaped.append('call')\n"
            "        except OSError:\n"
            "            pass\n"
            "    return escaped\n",
            "assert f()",
        ),
    }


@pytest.fixture(scope="module")
def canary(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("canary")
    directory.chmod(0o777)  # even a world-writable directory must stay untouched
    (directory / "canary.txt").write_text(CANARY_TEXT)
    return directory


@pytest.fixture(scope="module")
def outcome(canary: Path):
    """Runs every case once, in parallel; records the host's state before and after."""
    listener = socket.create_server(("127.0.0.1", 0))
    sentinel = subprocess.Popen(["sleep", "60"])
    before = {p.name: p.read_bytes() for p in canary.iterdir()}
    cases = generic_cases()
    if ISOLATED:
        cases.update(isolation_cases(canary, listener.getsockname()[1]))
    try:
        results = dict(zip(cases, run_many(list(cases.values()), LIMITS, workers=4), strict=True))
        time.sleep(0.3)  # let the kernel finish tearing down killed namespaces
        state = {
            "sentinel_alive": sentinel.poll() is None,
            "canary": {p.name: p.read_bytes() for p in canary.iterdir()},
            "strays": _sandbox_processes(),
        }
    finally:
        sentinel.kill()
        sentinel.wait()
        listener.close()
    return results, before, state


def _sandbox_processes() -> list[str]:
    """Processes of the sandbox's user ids or launchers still alive (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{entry}").st_uid
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
        if not zombie and (
            UID_RANGE[0] <= uid < UID_RANGE[1] or b"from inside import boot" in cmdline
        ):
            found.append(f"{entry} uid={uid} {cmdline[:80]!r}")
    return found


ALL_CASES = list(generic_cases())
ISOLATION_CASES = list(isolation_cases(Path("/nonexistent"), 1))


@pytest.mark.parametrize("case", ALL_CASES)
def test_generic_attack_fails_in_time(outcome, case: str) -> None:
    _check(outcome[0][case])


@pytest.mark.skipif(not ISOLATED, reason=NOT_ISOLATED)
@pytest.mark.parametrize("case", ISOLATION_CASES)
def test_host_attack_fails_in_time(outcome, case: str) -> None:
    _check(outcome[0][case])


@pytest.mark.parametrize("case", list(helper_cases()))
def test_helper_attack_runs_and_fails_an_assert(outcome, case: str) -> None:
    """The attack itself ran; the trusted helpers and objects made the tests catch it."""
    detail = outcome[0][case].detail
    assert detail.startswith("tests line") and "AssertionError" in detail, detail


def _check(result) -> None:
    assert not result.passed, result
    assert result.status is not Status.ERROR, result
    assert result.duration_s <= LIMITS.wall_seconds + 1.0, result


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("infinite_loop", Status.TIMEOUT),
        ("sleep_forever", Status.TIMEOUT),
        ("loop_in_call", Status.TIMEOUT),
        ("raise_own_limits", Status.TIMEOUT),
        ("memory_bomb", Status.MEMORY),
        ("huge_stdout", Status.OUTPUT_LIMIT),
        ("huge_stderr", Status.OUTPUT_LIMIT),
        ("sys_exit_0", Status.FAILED),
        ("os_exit_0", Status.FAILED),
        ("print_pass", Status.FAILED),
        ("always_equal", Status.FAILED),
    ],
)
def test_statuses_say_what_happened(outcome, case: str, status: Status) -> None:
    assert outcome[0][case].status is status, outcome[0][case]


def test_output_is_capped(outcome) -> None:
    result = outcome[0]["huge_stdout"]
    assert result.truncated and len(result.stdout) == LIMITS.max_output_bytes


@pytest.mark.skipif(not ISOLATED, reason=NOT_ISOLATED)
def test_host_is_untouched(outcome, canary: Path) -> None:
    _, before, state = outcome
    assert state["canary"] == before
    assert state["sentinel_alive"], "a program killed an unrelated host process"
    assert state["strays"] == []
    assert README.is_file()


@pytest.mark.skipif(not ISOLATED, reason=NOT_ISOLATED)
def test_isolation_layers_are_reported(outcome) -> None:
    layers = outcome[0]["sys_exit_0"].isolation
    for name in ("pid namespace", "network namespace", "mount namespace", "filesystem"):
        assert layers[name].startswith("on"), layers
