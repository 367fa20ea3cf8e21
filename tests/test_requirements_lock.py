"""The lock pins versions that the ranges in requirements.txt and setup.cfg admit."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def requirement_lines(text: str) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [Requirement(line) for line in lines if line]


def locked() -> dict[str, Version]:
    pins = requirement_lines((ROOT / "requirements.lock").read_text())
    assert all(len(p.specifier) == 1 and next(iter(p.specifier)).operator == "==" for p in pins)
    return {canonicalize_name(p.name): Version(next(iter(p.specifier)).version) for p in pins}


def ranges(source: str) -> list[Requirement]:
    if source == "setup.cfg":
        parser = configparser.ConfigParser()
        parser.read(ROOT / "setup.cfg")
        return requirement_lines(parser["options"]["install_requires"])
    return requirement_lines((ROOT / source).read_text())


@pytest.mark.parametrize("source", ["requirements.txt", "setup.cfg"])
def test_every_range_is_locked_and_admits_the_locked_version(source):
    pins = locked()
    for requirement in ranges(source):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{source}: {requirement} has no pin in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{source}: {requirement} does not admit the locked {name}=={pins[name]}"
        )


def test_setup_cfg_needs_nothing_that_requirements_txt_lacks():
    listed = {canonicalize_name(r.name) for r in ranges("requirements.txt")}
    assert {canonicalize_name(r.name) for r in ranges("setup.cfg")} <= listed
