"""Behaviour of single sandboxed runs: verdicts, statuses, output, the harness's semantics.

All cases run once, in parallel, through a module fixture; each test checks its own result.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from bgpo_lightning.sandbox import SandboxJob, SandboxLimits, Status, run_many, run_program

LIMITS = SandboxLimits(wall_seconds=5, cpu_seconds=2)

CASES = {
    "pass": SandboxJob("def f(x):\n    return 2 * x\n", "assert f(2) == 4\nassert f(-1) == -2"),
    "fail": SandboxJob("def f(x):\n    return x\n", "assert f(2) == 2\nassert f(3) == 6\n"),
    "no_tests": SandboxJob("x = 1\n"),
    "no_tests_raises": SandboxJob("raise ValueError('boom')\n"),
    "syntax": SandboxJob("def f(:\n", "assert f(1)"),
    "missing_name": SandboxJob("def g():\n    return 1\n", "assert f() == 1"),
    "output": SandboxJob("import sys\nprint('out')\nprint('err', file=sys.stderr)\n", ""),
    "env": SandboxJob(
        "import os, sys\nenv = dict(os.environ)\nflags = (sys.flags.isolated, sys.flags.no_site)\n"
        "cwd = os.getcwd()\n",
        "",
    ),
    "values": SandboxJob(
        "import collections\n"
        "def f():\n"
        "    return {'t': (1, 2.5, None), 's': {3}, 'b': b'x', 'c': 1j, 'n': -2**80,"
        " 'k': collections.Counter('aa')}\n",
        "assert f() == {'t': (1, 2.5, None), 's': {3}, 'b': b'x', 'c': 1j, 'n': -2**80,"
        " 'k': {'a': 2}}\nassert type(f()['t']) is tuple",
    ),
    "handles": SandboxJob(
        "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
        "def first(p):\n    return p.a\n"
        "def pairs(n):\n    return [Pair(i, i) for i in range(n)]\n",
        "p = Pair(3, 4)\nassert first(p) == 3\nassert [first(q) for q in pairs(3)] == [0, 1, 2]\n"
        "assert p != Pair(3, 4)\n",
    ),
    "opaque_truth": SandboxJob("def f():\n    return object()\n", "assert f()"),
    "raise_mapped": SandboxJob(
        "def f(x):\n    raise ValueError('bad ' + str(x))\n",
        "try:\n    f(1)\nexcept ValueError as e:\n    assert 'bad 1' in str(e)\nelse:\n"
        "    raise AssertionError('no error')\n",
    ),
    "kwargs_builtins": SandboxJob(
        "def f(t, *, kind):\n    return isinstance(t, kind)\n",
        "assert f((1,), kind=tuple) is True\nassert f(1, kind=str) is False\n",
    ),
    "shadow_len": SandboxJob(
        "def len(x):\n    return 3\ndef f():\n    return []\n", "assert len(f()) == 3"
    ),
    "expose_sum": SandboxJob(
        "def sum(a, b):\n    return a - b\n", "assert sum(5, 3) == 2", expose=("sum",)
    ),
    "tests_broken": SandboxJob("def f():\n    return 1\n", "assert f( == 1"),
    "setup_helper": SandboxJob(
        "def f(x):\n    return 2 * x\n",
        "assert f(3) == double(3)\nassert calls == [3]\n",
        setup="calls = []\ndef double(x):\n    calls.append(x)\n    return x + x\n",
    ),
    "setup_objects_copied": SandboxJob(
        "class Node:\n"
        "    def size(self):\n"
        "        return 1 + sum(c.size() for c in (self.left, self.right) if c)\n"
        "def count(n):\n    return n.size()\n"
        "def add(p):\n    return [p.a + p.b, type(p).__name__]\n",
        "assert count(tree) == 4\n"
        "assert add(Pair(2, 3)) == [5, 'SimpleNamespace']\n"
        "assert add(p=Pair(1, 1)) == [2, 'SimpleNamespace']\n",
        setup="class Node:\n"
        "    def __init__(self, left=None, right=None):\n"
        "        self.left, self.right = left, right\n"
        "class Pair:\n"
        "    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
        "tree = Node(Node(), Node(Node()))\n",
    ),
    "setup_calls_program": SandboxJob(
        "def f(x):\n    return 2 * x\n", "assert y == 4\n", setup="y = f(2)\n"
    ),
    "setup_raises": SandboxJob(
        "def f():\n    return 1\n", "assert f() == 1", setup="x = 1\nraise ValueError('no')\n"
    ),
    "setup_broken": SandboxJob("def f():\n    return 1\n", "assert f() == 1", setup="def (:\n"),
    "main_guard": SandboxJob(
        "def f():\n    return 1\nif __name__ == '__main__':\n    raise SystemExit(1)\n",
        "assert f() == 1",
    ),
}


@pytest.fixture(scope="module")
def results():
    before = set(os.listdir(tempfile.gettempdir()))
    out = dict(zip(CASES, run_many(list(CASES.values()), LIMITS, workers=4), strict=True))
    out["__leftover__"] = {
        d for d in set(os.listdir(tempfile.gettempdir())) - before if d.startswith("bgpo-sandbox-")
    }
    return out


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("pass", Status.PASSED),
        ("fail", Status.FAILED),
        ("no_tests", Status.PASSED),
        ("no_tests_raises", Status.FAILED),
        ("syntax", Status.FAILED),
        ("missing_name", Status.FAILED),
        ("output", Status.PASSED),
        ("env", Status.PASSED),
        ("values", Status.PASSED),
        ("handles", Status.PASSED),
        ("opaque_truth", Status.FAILED),
        ("raise_mapped", Status.PASSED),
        ("kwargs_builtins", Status.PASSED),
        ("shadow_len", Status.FAILED),
        ("expose_sum", Status.PASSED),
        ("tests_broken", Status.ERROR),
        ("setup_helper", Status.PASSED),
        ("setup_objects_copied", Status.PASSED),
        ("setup_calls_program", Status.PASSED),
        ("setup_raises", Status.FAILED),
        ("setup_broken", Status.ERROR),
        ("main_guard", Status.PASSED),
    ],
)
def test_status(results, case: str, status: Status) -> None:
    result = results[case]
    assert result.status is status, result
    assert result.passed is (status is Status.PASSED)


def test_failure_details_name_the_line_and_error(results) -> None:
    assert results["fail"].detail == "tests line 2: AssertionError"
    assert "program: SyntaxError" in results["syntax"].detail
    assert "NameError" in results["missing_name"].detail
    assert "program: ValueError: boom" in results["no_tests_raises"].detail
    assert "no truth value" in results["opaque_truth"].detail
    assert results["setup_raises"].detail == "setup line 2: ValueError: no"
    assert results["setup_broken"].detail.startswith("compile line 1: SyntaxError")


def test_output_is_captured(results) -> None:
    assert results["output"].stdout == "out\n" and results["output"].stderr == "err\n"
    assert not results["output"].truncated


def test_temporary_directories_are_removed(results) -> None:
    assert results["__leftover__"] == set()


def test_program_sees_an_isolated_interpreter_and_empty_environment() -> None:
    probe = (
        "import os, sys\n"
        "def state():\n"
        "    return sorted(os.environ), sys.flags.isolated, sys.flags.no_site, os.getcwd()\n"
    )
    result = run_program(
        probe,
        "names, isolated, no_site, cwd = state()\n"
        "assert set(names) <= {'LC_ALL', 'PATH', 'LC_CTYPE'}, names\n"
        "assert isolated == 1 and no_site == 1\n",
        LIMITS,
    )
    assert result.passed, result


def test_long_running_tests_make_many_calls() -> None:
    result = run_program(
        "def add(a, b):\n    return a + b\n",
        "import random\nfor _ in range(500):\n"
        "    x, y = random.randint(0, 99), random.randint(0, 99)\n    assert add(x, y) == x + y\n",
        LIMITS,
    )
    assert result.passed and result.duration_s < 5, result


def test_invalid_isolation_mode() -> None:
    with pytest.raises(ValueError, match="isolation"):
        run_program("", "", LIMITS, isolation="maybe")
