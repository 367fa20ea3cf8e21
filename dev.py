"""Set up and run the project in one command, on a machine with nothing but Python >= 3.10.

    python3 dev.py run [ARGS]     set up .venv, then: python -m experiments.run [ARGS]
    python3 dev.py test [ARGS]    set up .venv, then: ruff check . && python -m pytest [ARGS]
    python3 dev.py test --newest  the same in a clean .venv-newest, with the newest versions
                                  the ranges in requirements.txt admit instead of the lock
    python3 dev.py lock           test --newest, then pin what passed in requirements.lock
    --torch VERSION               with test --newest or lock: this torch instead of the locked one
    python3 dev.py setup          only set up .venv

.venv is created on first use and reused while requirements.txt, requirements.lock and
setup.cfg are unchanged. It sees the interpreter's own packages, so a torch that is already
importable (a GPU image's, say) is used as it is; otherwise the locked torch is installed, the
CPU build where there is no CUDA. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "requirements.txt"
LOCK = ROOT / "requirements.lock"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
LOCK_HEADER = """\
# Exact versions the whole test suite passed with (python3 dev.py lock wrote this file).
# python3 dev.py run|test install from it; requirements.txt and setup.cfg keep the ranges.
# Refresh: python3 dev.py lock   (newest versions the ranges admit, full test suite, then pin)
"""


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def call(*args: object) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT)


def importable(python: Path, module: str) -> bool:
    probe = [str(python), "-c", f"import {module}"]
    return subprocess.run(probe, capture_output=True, cwd=ROOT).returncode == 0


def torch_version(python: Path) -> str:
    probe = [str(python), "-c", "import torch; print(torch.__version__)"]
    return subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()


def has_cuda() -> bool:
    return shutil.which("nvidia-smi") is not None


def locked_torch() -> str | None:
    """The torch version in the lock (``2.13.0``), or None when it pins none."""
    for line in LOCK.read_text().splitlines() if LOCK.is_file() else []:
        if line.startswith("torch=="):
            return line.split("==", 1)[1].strip()
    return None


def install_torch(python: Path, version: str | None) -> None:
    """Installs torch where it is not importable: the CPU build on Linux without CUDA."""
    if importable(python, "torch"):
        return
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    if sys.platform.startswith("linux") and not has_cuda():
        # PyPI's Linux wheels carry several GB of CUDA libraries; the CPU index has lean ones.
        spec = f"torch=={version}+cpu" if version else "torch"
        call(*pip, spec, "--extra-index-url", CPU_INDEX)
    else:
        call(*pip, f"torch=={version}" if version else "torch")


def constraints_without_torch(directory: Path) -> Path:
    """The lock minus torch: the torch already in the environment stays as it is."""
    lines = [line for line in LOCK.read_text().splitlines() if not line.startswith("torch==")]
    path = directory / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def fingerprint(newest: bool, torch: str | None) -> str:
    digest = hashlib.sha256(f"{newest} {torch} {platform.python_version()}".encode())
    for path in (REQUIREMENTS, LOCK, ROOT / "setup.cfg", ROOT / "pyproject.toml"):
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def ensure_env(venv: Path, newest: bool = False, torch: str | None = None) -> Path:
    """Creates ``venv`` if needed and installs the project into it; returns its python.

    The locked environment sees the interpreter's packages (an importable torch is reused);
    the newest one is clean, so that its freeze is complete and nothing leaks in.
    """
    python = venv_python(venv)
    stamp = venv / "bgpo-installed.sha256"
    if python.is_file() and stamp.is_file() and stamp.read_text() == fingerprint(newest, torch):
        return python
    if not python.is_file():
        shared = [] if newest else ["--system-site-packages"]
        call(sys.executable, "-m", "venv", *shared, venv)
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    install_torch(python, torch or locked_torch())
    with tempfile.TemporaryDirectory() as tmp:
        if newest:  # everything to the newest admitted release, but torch stays as chosen
            hold = Path(tmp) / "torch.txt"
            # The public version: a local label (+cpu, +cu130) is found on no index.
            hold.write_text(f"torch=={torch_version(python).split('+')[0]}\n")
            call(*pip, "--upgrade", "--upgrade-strategy", "eager", "-r", REQUIREMENTS, "-c", hold)
        else:
            call(*pip, "-r", REQUIREMENTS, "-c", constraints_without_torch(Path(tmp)))
    call(*pip, "--no-deps", "-e", ROOT)
    stamp.write_text(fingerprint(newest, torch))
    return python


def run_tests(python: Path, pytest_args: list[str]) -> None:
    call(python, "-m", "ruff", "check", ".")
    call(python, "-m", "pytest", *pytest_args)


def write_lock(python: Path) -> None:
    """Pins every distribution in ``python``'s environment except the project itself."""
    frozen = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pins = sorted(
        line.split("+", 1)[0] if line.startswith("torch==") else line  # 2.13.0+cpu -> 2.13.0
        for line in frozen
        if "==" in line and not line.lower().startswith(("bgpo", "pip==", "setuptools=="))
    )
    LOCK.write_text(LOCK_HEADER + "\n".join(pins) + "\n")
    print(f"wrote {LOCK.name}: {len(pins)} pins", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    # No -h of its own: `dev.py run --help` and `dev.py test --help` reach the program.
    parser = argparse.ArgumentParser(prog="dev.py", add_help=False)
    parser.add_argument("command", choices=["run", "test", "lock", "setup"])
    parser.add_argument("--newest", action="store_true", help="test: newest versions, no lock")
    parser.add_argument("--torch", help="newest/lock: torch version (default: the locked one)")
    parser.add_argument("--venv", type=Path, help="virtual environment (default .venv)")
    args, rest = parser.parse_known_args(argv)
    newest = args.newest or args.command == "lock"
    if args.torch and not newest:
        parser.error("--torch goes with test --newest or lock; .venv keeps the locked torch")
    venv = args.venv or ROOT / (".venv-newest" if newest else ".venv")
    try:
        python = ensure_env(venv, newest, args.torch)
        if args.command == "run":
            call(python, "-m", "experiments.run", *rest)
        elif args.command in ("test", "lock"):
            run_tests(python, rest)
        if args.command == "lock":
            write_lock(python)
    except subprocess.CalledProcessError as error:
        return error.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
