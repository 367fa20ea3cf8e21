"""dev.py's pure parts: help without set-up, the lock's torch, constraints without torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
dev = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dev)


def test_help_sets_nothing_up(capsys, monkeypatch):
    monkeypatch.setattr(dev, "ensure_env", lambda *a: (_ for _ in ()).throw(AssertionError))
    assert dev.main(["--help"]) == 0
    assert "python3 dev.py run" in capsys.readouterr().out


def test_lock_pins_torch_and_constraints_leave_it_out(tmp_path):
    version = dev.locked_torch()
    assert version and "+" not in version
    constraints = dev.constraints_without_torch(tmp_path).read_text().splitlines()
    assert not any(line.startswith("torch==") for line in constraints)
    assert any(line.startswith("lightning==") for line in constraints)
