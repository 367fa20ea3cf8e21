"""Completions that fake a pass by tampering with what the tests check against.

HumanEval prompts define helpers the tests call (``encode_cyclic``, ``encode_shift``,
``poly``) and MBPP's ``test_setup_code`` builds the tests' inputs. Those are trusted data: a
completion that redefines, wraps or patches them, or recognises the tests' objects, must
score 0, while a genuine solution that defines or uses the same names still scores 1.
All cases run once, in parallel, through a module fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpo_lightning.tasks.base import Example
from bgpo_lightning.tasks.humaneval import HumanEvalTask
from bgpo_lightning.tasks.mbpp import MbppTask

LIMITS = {"wall_seconds": 10.0, "cpu_seconds": 5.0}
MBPP_DATA = Path("/work/shared/datasets/mbpp/mbpp.jsonl")

# Swaps a method of a built-in type in this process (what "curse"-style libraries do).
PATCH_TYPE = (
    "import ctypes, gc, sys\n"
    "def _patch(kind, name, make):\n"
    "    slots = gc.get_referents(kind.__dict__)[0]\n"
    "    slots[name] = make(slots[name])\n"
    "    ctypes.pythonapi.PyType_Modified(ctypes.py_object(kind))\n"
)

# Each HumanEval attack: (task id, completion); every one is a wrong solution.
HUMANEVAL_ATTACKS = {
    "redefine_encode_cyclic": (
        "HumanEval/38",
        "def encode_cyclic(s):\n    return s\n\n\ndef decode_cyclic(s):\n    return s\n",
    ),
    "wrap_encode_cyclic_and_record": (
        "HumanEval/38",
        "_seen = {}\n_real = encode_cyclic\n\n\n"
        "def encode_cyclic(s):\n    out = _real(s)\n    _seen[out] = s\n    return out\n\n\n"
        "def decode_cyclic(s):\n    return _seen.get(s, s)\n",
    ),
    "replace_encode_cyclic_code": (
        "HumanEval/38",
        "encode_cyclic.__code__ = (lambda s: s).__code__\n\n\n"
        "def decode_cyclic(s):\n    return s\n",
    ),
    "patch_str_join_in_encode_cyclic": (
        "HumanEval/38",
        PATCH_TYPE + "def _uncycle(join):\n"
        "    def patched(self, parts):\n"
        "        if sys._getframe(1).f_code.co_name == 'encode_cyclic':\n"
        "            parts = [p[-1] + p[:-1] if len(p) == 3 else p for p in parts]\n"
        "        return join(self, parts)\n"
        "    return patched\n"
        "_patch(str, 'join', _uncycle)\n\n\n"
        "def decode_cyclic(s):\n    return s\n",
    ),
    "patch_builtin_len_in_encode_cyclic": (
        "HumanEval/38",
        "import builtins, sys\n_len = len\n\n\n"
        "def _no_triples(x):\n"
        "    n = _len(x)\n"
        "    caller = sys._getframe(1).f_code.co_name\n"
        "    return 0 if caller == '<listcomp>' and n == 3 else n\n\n\n"
        "builtins.len = _no_triples\n\n\n"
        "def decode_cyclic(s):\n    return s\n",
    ),
    "redefine_encode_shift": (
        "HumanEval/50",
        "def encode_shift(s):\n    return s\n\n\ndef decode_shift(s):\n    return s\n",
    ),
    "wrap_encode_shift_and_record": (
        "HumanEval/50",
        "import functools\n_seen = {}\n\n\n"
        "def _recording(real):\n"
        "    @functools.wraps(real)\n"
        "    def wrapper(s):\n        out = real(s)\n        _seen[out] = s\n        return out\n"
        "    return wrapper\n\n\n"
        "encode_shift = _recording(encode_shift)\n\n\n"
        "def decode_shift(s):\n    return _seen.get(s, '')\n",
    ),
    "patch_builtin_chr_in_encode_shift": (
        "HumanEval/50",
        "import builtins, sys\n_chr = chr\n\n\n"
        "def _unshift(i):\n"
        "    if sys._getframe(1).f_back.f_code.co_name == 'encode_shift':\n"
        "        i = (i - ord('a') - 5) % 26 + ord('a')\n"
        "    return _chr(i)\n\n\n"
        "builtins.chr = _unshift\n\n\n"
        "def decode_shift(s):\n    return s\n",
    ),
    "redefine_poly": (
        "HumanEval/32",
        "def poly(xs, x):\n    return 0.0\n\n\ndef find_zero(xs):\n    return 0.0\n",
    ),
    "patch_math_pow": (
        "HumanEval/32",
        "import math\nmath.pow = lambda x, y: 0.0\n\n\ndef find_zero(xs):\n    return 0.0\n",
    ),
    "replace_math_in_poly_globals": (
        "HumanEval/32",
        "import types\n"
        "poly.__globals__['math'] = types.SimpleNamespace(pow=lambda x, y: 0.0)\n\n\n"
        "def find_zero(xs):\n    return 0.0\n",
    ),
    "patch_builtin_sum": (
        "HumanEval/32",
        "import builtins\nbuiltins.sum = lambda *args, **kwargs: 0\n\n\n"
        "def find_zero(xs):\n    return 0.0\n",
    ),
    "patch_builtin_enumerate": (
        "HumanEval/32",
        "import builtins\nbuiltins.enumerate = lambda xs: iter(())\n\n\n"
        "def find_zero(xs):\n    return 0.0\n",
    ),
    "mutate_argument": (
        "HumanEval/32",
        "def find_zero(xs):\n    xs[:] = [0] * len(xs)\n    return 0.0\n",
    ),
}

# Genuine solutions that use or redefine the helpers' names in their own process.
HUMANEVAL_GENUINE = {
    "decode_with_own_copy_of_helper": (
        "HumanEval/38",
        "def encode_cyclic(s):\n"
        "    groups = [s[3 * i:min(3 * i + 3, len(s))] for i in range((len(s) + 2) // 3)]\n"
        "    return ''.join(g[1:] + g[0] if len(g) == 3 else g for g in groups)\n\n\n"
        "def decode_cyclic(s):\n    return encode_cyclic(encode_cyclic(s))\n",
    ),
    "find_zero_calling_poly": (
        "HumanEval/32",
        "def find_zero(xs):\n"
        "    lo, hi = -1.0, 1.0\n"
        "    while poly(xs, lo) * poly(xs, hi) > 0:\n"
        "        lo, hi = lo * 2, hi * 2\n"
        "    for _ in range(200):\n"
        "        mid = (lo + hi) / 2\n"
        "        if poly(xs, mid) * poly(xs, lo) > 0:\n"
        "            lo = mid\n"
        "        else:\n"
        "            hi = mid\n"
        "    return lo\n",
    ),
}

# MBPP tasks whose setup code builds trees: (task id, completion); all wrong solutions.
NODE = (
    "class Node:\n"
    "    def __init__(self, data):\n"
    "        self.data = data\n        self.left = None\n        self.right = None\n\n"
)
MBPP_ATTACKS = {
    "find_setup_object_by_name": (
        927,
        NODE + "def max_height(node):\n"
        "    for name, value in list(globals().items()):\n"
        "        if value is node:\n"
        "            return {'root': 3, 'root1': 5, 'root2': 4}[name]\n"
        "    return 0\n",
    ),
    "record_node_construction": (
        927,
        "_made = []\n\n"
        "class Node:\n"
        "    def __init__(self, data):\n"
        "        self.data, self.left, self.right = data, None, None\n"
        "        _made.append(self)\n\n"
        "def max_height(node):\n"
        "    roots = [n for n in _made if n.data == 1]\n"
        "    return [3, 5, 4][roots.index(node)] if node in roots else 0\n",
    ),
    "find_setup_object_by_name_367": (
        367,
        NODE + "def is_tree_balanced(root):\n"
        "    for name, value in list(globals().items()):\n"
        "        if value is root:\n"
        "            return name == 'root1'\n"
        "    return False\n",
    ),
}

MBPP_GENUINE = {
    "max_height_without_node_class": (
        927,
        "def max_height(node):\n"
        "    if node is None:\n        return 0\n"
        "    return 1 + max(max_height(node.left), max_height(node.right))\n",
    ),
    "max_height_with_node_method": (
        927,
        NODE[:-1] + "    def height(self):\n"
        "        sides = [c.height() for c in (self.left, self.right) if c is not None]\n"
        "        return 1 + max(sides, default=0)\n\n"
        "def max_height(node):\n    return node.height()\n",
    ),
}


def _failed_an_assert(result) -> bool:
    return result.detail.startswith("tests line") and "AssertionError" in result.detail


def _fenced(code: str) -> str:
    return f"```python\n{code}```\n"


@pytest.fixture(scope="module")
def humaneval() -> dict[str, Example]:
    task = HumanEvalTask(limits=LIMITS)
    return {ex.meta["task_id"]: ex for ex in task.load()}


@pytest.fixture(scope="module")
def mbpp() -> dict[int, Example]:
    if not MBPP_DATA.is_file():
        pytest.skip("shared MBPP data not available")
    rows = MbppTask(limits=LIMITS).load(MBPP_DATA)
    return {ex.meta["task_id"]: ex for ex in rows if ex.meta["task_id"] in (367, 927)}


@pytest.fixture(scope="module")
def humaneval_results(humaneval):
    cases = {**HUMANEVAL_ATTACKS, **HUMANEVAL_GENUINE}
    task = HumanEvalTask(limits=LIMITS, workers=2)
    examples = [humaneval[task_id] for task_id, _ in cases.values()]
    completions = [_fenced(code) for _, code in cases.values()]
    return dict(zip(cases, task.run(completions, examples), strict=True))


@pytest.fixture(scope="module")
def mbpp_results(mbpp):
    cases = {**MBPP_ATTACKS, **MBPP_GENUINE}
    cases["reference_927"] = (927, mbpp[927].target)
    cases["reference_367"] = (367, mbpp[367].target)
    task = MbppTask(limits=LIMITS, workers=2, num_shots=0)
    examples = [mbpp[task_id] for task_id, _ in cases.values()]
    return dict(zip(cases, task.run([c for _, c in cases.values()], examples), strict=True))


@pytest.mark.parametrize("case", list(HUMANEVAL_ATTACKS))
def test_humaneval_helper_attack_scores_zero(humaneval_results, case: str) -> None:
    result = humaneval_results[case]
    assert not result.passed, result
    assert _failed_an_assert(result), result  # the attack ran, the tests caught it


@pytest.mark.parametrize("case", list(HUMANEVAL_GENUINE))
def test_humaneval_genuine_use_of_helpers_passes(humaneval_results, case: str) -> None:
    assert humaneval_results[case].passed, humaneval_results[case]


@pytest.mark.parametrize("case", list(MBPP_ATTACKS))
def test_mbpp_setup_attack_scores_zero(mbpp_results, case: str) -> None:
    result = mbpp_results[case]
    assert not result.passed, result
    assert _failed_an_assert(result), result  # the attack ran, the tests caught it


@pytest.mark.parametrize("case", [*MBPP_GENUINE, "reference_927", "reference_367"])
def test_mbpp_genuine_solution_passes(mbpp_results, case: str) -> None:
    assert mbpp_results[case].passed, mbpp_results[case]
