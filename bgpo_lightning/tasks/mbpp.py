"""MBPP: write a Python function from a description; reward 1.0 iff its asserts pass."""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.sandbox import SandboxJob
from bgpo_lightning.tasks.base import Example, RowError, check_template, is_int
from bgpo_lightning.tasks.code_extract import mbpp_code
from bgpo_lightning.tasks.code_task import CodeTask
from bgpo_lightning.tasks.sources import (
    HF_PREFIX,
    SourceRowError,
    is_hub_source,
    parse_hub_source,
    read_rows,
)

# The prompt format of the MBPP paper (Austin et al., 2021), ending where the code starts.
DEFAULT_PROMPT = (
    "You are an expert Python programmer, and here is your task: {text} "
    "Your code should pass these tests:\n\n{tests}\n[BEGIN]\n"
)
DEFAULT_TARGET = "{code}\n[DONE]"
SHOT_TASK_IDS = (2, 3, 4)  # the standard 3-shot examples, from MBPP's "prompt" split
SHOTS_FILE = "prompt.jsonl"
_SHOT_SEPARATOR = "\n\n"

_PROMPT_FIELDS = ("text", "tests")
_TARGET_FIELDS = ("code",)
_DEFINED = re.compile(r"^(?:async[ \t]+)?def[ \t]+(\w+)", re.M)
_CALLED = re.compile(r"\b(\w+)[ \t]*\(")


def _clean(code: str) -> str:
    return code.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def _loaded(node: ast.AST) -> set[str]:
    """Names ``node`` reads that are not built-ins."""
    return {
        n.id
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and not hasattr(builtins, n.id)
    }


def _bound(stmt: ast.stmt) -> list[str]:
    """Names a top-level statement of a reference solution defines (def, class, import, =)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    if isinstance(stmt, ast.Assign):
        return [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    return []


def setup_definitions(setup: str, code: str, tested: Sequence[str]) -> str | None:
    """The reference's definitions the setup code needs, e.g. the ``Node`` class it builds
    trees from, so the harness can run the setup without the program.

    Returns:
        Their source (``""`` if none are needed), or ``None`` if the setup needs a name the
        reference does not define, or one of the ``tested`` functions.
    """
    try:
        setup_tree, reference = ast.parse(setup), ast.parse(code)
    except SyntaxError:
        return None
    stored = {
        n.id
        for n in ast.walk(setup_tree)
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)
    }
    stored.update(name for stmt in setup_tree.body for name in _bound(stmt))
    needed = _loaded(setup_tree) - stored
    defining = {name: stmt for stmt in reference.body for name in _bound(stmt)}
    if any(name not in defining or name in tested for name in needed):
        return None
    chosen: dict[int, ast.stmt] = {}
    todo = list(needed)
    while todo:  # the definitions, and the reference's names they use in turn
        stmt = defining[todo.pop()]
        if id(stmt) not in chosen:
            chosen[id(stmt)] = stmt
            todo += [n for n in _loaded(stmt) if n in defining and n not in tested]
    lines = code.splitlines(keepends=True)
    parts = []
    for stmt in sorted(chosen.values(), key=lambda s: s.lineno):
        first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        parts.append("".join(lines[first - 1 : stmt.end_lineno]).rstrip() + "\n")
    return "".join(parts)


class MbppTask(CodeTask):
    """MBPP with the standard few-shot prompt and the ``test_list`` asserts as tests.

    The program is the code of the completion (between ``[BEGIN]`` and ``[DONE]``, see
    :mod:`bgpo_lightning.tasks.code_extract`); the asserts of ``test_list`` run in the
    sandbox's trusted harness (``challenge_test_list`` is not used, as in the standard
    evaluation), after the row's ``test_setup_code``. The setup runs in the harness too, with
    the reference solution's definitions it needs (:func:`setup_definitions`: the ``Node``
    class of the tree tasks), so the program neither builds nor sees the tests' objects: it
    gets copies, as instances of its own class of that name if it defines one. A setup that
    needs a name the reference does not define runs with the program instead, as before.
    The standard prompt shows the asserts, so a program may hard-code their answers: no
    sandbox can tell that from solving the task.

    Args:
        prompt_template: One problem, with ``{text}`` (the description) and optionally
            ``{tests}`` (the asserts, one per line).
        target_template: SFT response and the shots' answers, with ``{code}``.
        num_shots: Leading solved examples (0 to 3), MBPP tasks 2, 3 and 4 in that order,
            each formatted with both templates, separated by a blank line.
        shots_path: MBPP's ``prompt.jsonl``; ``None`` uses the one beside the data file
            being loaded.
        limits: Sandbox limits, see :class:`~bgpo_lightning.tasks.code_task.CodeTask`.
        workers: Programs run at once.
        isolation: Sandbox isolation mode.
    """

    name = "mbpp"
    data_hint = "MBPP's train/validation/test .jsonl, with prompt.jsonl beside it for shots"

    def __init__(
        self,
        prompt_template: str = DEFAULT_PROMPT,
        target_template: str = DEFAULT_TARGET,
        num_shots: int = 3,
        shots_path: str | None = None,
        limits: Mapping[str, Any] | None = None,
        workers: int | None = None,
        isolation: str = "auto",
    ) -> None:
        super().__init__(limits=limits, workers=workers, isolation=isolation)
        self.prompt_template = check_template(
            prompt_template, kind="prompt_template", allowed=_PROMPT_FIELDS, required=("text",)
        )
        self.target_template = check_template(
            target_template, kind="target_template", allowed=_TARGET_FIELDS, required=("code",)
        )
        if not 0 <= num_shots <= len(SHOT_TASK_IDS):
            raise ValueError(f"num_shots must be in [0, {len(SHOT_TASK_IDS)}], got {num_shots}")
        self.num_shots = num_shots
        self.shots_path = shots_path
        self._preamble: str | None = None if num_shots else ""

    def load(self, path: str | Path, limit: int | None = None) -> list[Example]:
        """Reads an MBPP split; shots come from ``shots_path`` or the split's directory."""
        if self._preamble is None and self.shots_path is None:
            if is_hub_source(path):  # the Hub's MBPP has the shots as its "prompt" split
                name, config, _ = parse_hub_source(str(path))
                shots = f"{HF_PREFIX}{name}:{config + ':' if config else ''}prompt"
            else:
                shots = Path(path).with_name(SHOTS_FILE)
            self._preamble = self._read_shots(shots)
        return super().load(path, limit)

    def preamble(self) -> str:
        """The solved examples put before every problem (``""`` without shots).

        Raises:
            ConfigError: If shots are wanted but no shots file is known or readable.
        """
        if self._preamble is None:
            if self.shots_path is None:
                raise ConfigError(
                    "mbpp: num_shots > 0 needs shots_path (MBPP's prompt.jsonl) or a data "
                    "file loaded from the directory holding it"
                )
            self._preamble = self._read_shots(self.shots_path)
        return self._preamble

    def _read_shots(self, path: str | Path) -> str:
        try:
            rows = {row.get("task_id"): row for _, row in read_rows(path)}
        except FileNotFoundError:
            raise ConfigError(f"mbpp: shots file not found: {path} (set shots_path)") from None
        except SourceRowError as err:
            raise ConfigError(f"mbpp: shots file: {err}") from None
        parts = []
        for task_id in SHOT_TASK_IDS[: self.num_shots]:
            if task_id not in rows:
                raise ConfigError(f"mbpp: shots file {path} has no task {task_id}")
            row = rows[task_id]
            parts.append(
                self._problem(row["text"], row["test_list"])
                + self.target_template.format(code=_clean(row["code"]))
                + _SHOT_SEPARATOR
            )
        return "".join(parts)

    def _problem(self, text: str, tests: Sequence[str]) -> str:
        return self.prompt_template.format(text=text.strip(), tests="\n".join(tests))

    def parse_row(self, row: Mapping[str, Any]) -> Example:
        """Validates an MBPP row (``task_id``, ``text``, ``code``, ``test_list``, optional
        ``test_setup_code``) and builds its example."""
        for key in ("task_id", "text", "code", "test_list"):
            if key not in row:
                raise RowError(f"missing key {key!r}")
        if not is_int(row["task_id"]):
            raise RowError("key 'task_id' must be an integer")
        for key in ("text", "code"):
            if not isinstance(row[key], str):
                raise RowError(f"key {key!r} must be a string")
        tests = row["test_list"]
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            raise RowError("key 'test_list' must be a non-empty list of strings")
        setup = row.get("test_setup_code", "")
        if not isinstance(setup, str):
            raise RowError("key 'test_setup_code' must be a string")
        return self.make_example(row["task_id"], row["text"], row["code"], tests, setup)

    def make_example(
        self, task_id: int, text: str, code: str, tests: Sequence[str], setup: str = ""
    ) -> Example:
        """Builds the example of one problem (``code`` is its reference solution)."""
        tests = [_clean(t) for t in tests]
        code, setup = _clean(code), _clean(setup)
        called = set(_CALLED.findall("\n".join(tests)))
        defined = [name for name in _DEFINED.findall(code) if name in called]
        support = setup_definitions(setup, code, defined) if setup else ""
        return Example(
            prompt=self.preamble() + self._problem(text, tests),
            target=self.target_template.format(code=code),
            meta={
                "task_id": task_id,
                "tests": tests,
                # trusted code the harness runs before the asserts, or else the setup for the
                # program (when the reference does not define what it needs)
                "setup": support + setup if support is not None else "",
                "program_setup": setup if support is None else "",
                "entry_point": defined[0] if defined else "",
                "expose": sorted(n for n in set(defined) if hasattr(builtins, n)),
            },
        )

    def job(self, completion: str, example: Example) -> SandboxJob:
        """The completion's code, against the setup and the asserts."""
        meta = example.meta
        program = mbpp_code(completion, meta["entry_point"] or None)
        if meta["program_setup"]:
            program += "\n" + meta["program_setup"] + "\n"
        tests = "\n".join(meta["tests"]) + "\n"
        return SandboxJob(program, tests, expose=tuple(meta["expose"]), setup=meta["setup"])
