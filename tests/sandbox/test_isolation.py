"""Isolation layers: what this machine provides, and graceful degradation without them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from bgpo_lightning.sandbox import (
    SandboxJob,
    SandboxLimits,
    Status,
    describe_isolation,
    isolation_report,
    run_many,
    runner,
)
from bgpo_lightning.sandbox.isolation import ESSENTIAL, fully_isolated

LIMITS = SandboxLimits(wall_seconds=5, cpu_seconds=2)
REPO = Path(__file__).resolve().parents[2]
JOBS = [
    SandboxJob("def f(x):\n    return x + 1\n", "assert f(1) == 2"),
    SandboxJob("def f(x):\n    return x\n", "assert f(1) == 2"),
    SandboxJob(
        "import math, collections\ndef f():\n    return math.gcd(4, 6)\n", "assert f() == 2"
    ),
    SandboxJob("import sys\nsys.exit(0)\n", "assert f(1) == 2"),
]


def test_report_names_every_layer() -> None:
    layers = isolation_report()
    text = describe_isolation()
    for name in ("filesystem", "user ids", "rlimits", "seccomp"):
        assert name in layers and f"{name}: " in text
    assert all(v.startswith(("on", "off", "not needed")) for v in layers.values()), layers


@pytest.mark.skipif(
    not fully_isolated(isolation_report()), reason="namespaces unavailable on this machine"
)
def test_this_machine_is_fully_isolated() -> None:
    layers = isolation_report()
    assert all(layers[name] == "on" or layers[name].startswith("on (") for name in ESSENTIAL)
    assert layers["user ids"].startswith("on")


def test_off_mode_still_judges_correctly_and_says_so() -> None:
    results = run_many(JOBS, LIMITS, workers=4, isolation="off")
    assert [r.status for r in results] == [
        Status.PASSED,
        Status.FAILED,
        Status.PASSED,
        Status.FAILED,
    ], results
    layers = results[0].isolation
    assert layers["namespaces"].startswith("off") and layers["filesystem"].startswith("off")
    assert not fully_isolated(layers)


def test_degraded_isolation_warns_once(monkeypatch) -> None:
    monkeypatch.setattr(runner, "_warned", False)
    layers = {"namespaces": "off (unshare refused: Operation not permitted)"}
    with pytest.warns(RuntimeWarning, match="without namespaces"):
        runner._warn_if_degraded(layers)
    runner._warn_if_degraded(layers)  # second call: silent (would fail under -W error)


SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root, setpriv and a system python3 to run as an unprivileged user",
)
def test_unprivileged_user_gets_a_user_namespace_or_degrades() -> None:
    """As uid 65534 the sandbox uses a user namespace; without one it still works."""
    script = textwrap.dedent(
        """
        import json
        from bgpo_lightning.sandbox import SandboxJob, run_many
        jobs = [SandboxJob("def f():\\n    return 1\\n", "assert f() == 1"),
                SandboxJob("import os\\nos.kill(-1, 9)\\n", "assert f() == 1"),
                SandboxJob("def f():\\n    return open('/etc/hostname').read()\\n",
                           "assert f()")]
        print(json.dumps([[r.status.value, dict(r.isolation)] for r in run_many(jobs)]))
        """
    )
    out = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            SYSTEM_PYTHON,
            "-c",
            script,
        ],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0 and "No module named" in out.stderr:
        pytest.skip(f"system python cannot import the package: {out.stderr[-200:]}")
    assert out.returncode == 0, out.stderr
    (ok, ok_layers), (killer, _), (reader, _) = json.loads(out.stdout)
    assert (ok, killer) == ("passed", "failed"), out.stdout
    if ok_layers.get("user namespace") == "on":
        assert ok_layers["user ids"].startswith("on") and reader == "failed"
        assert "signals to itself only" in ok_layers["seccomp"]
    else:  # degraded: still judged, and the report says why
        assert ok_layers["namespaces"].startswith("off")
