"""d1's Countdown reward, row by row, from reading diffu-grpo/reward_func.py (compute_score).

d1: equation = last match of ``<answer>(.*?)</answer>`` (DOTALL), stripped; None -> 0.
Then 0.1 unless (a) ``sorted(int(n) for n in re.findall(r"\\d+", eq)) == sorted(numbers)``,
(b) ``eq`` matches ``^[\\d+\\-*/().\\s]+$``, (c) ``eval(eq)`` neither raises nor returns a
non-number, and (d) ``abs(result - target) < 1e-5``; then 1.0.
"""

from __future__ import annotations

import pytest

from bgpo_lightning.tasks import CountdownTask, Example
from bgpo_lightning.tasks.d1_countdown import d1_countdown_reward

N = (3, 5, 2)  # numbers of most rows; the target is 16 unless a row says otherwise

# (completion, numbers, target, d1 reward)
TABLE = [
    # --- tags ---
    ("(3+5)*2", N, 16, 0.0),  # no tag: findall finds nothing -> None -> 0
    ("<answer>(3+5)*2", N, 16, 0.0),  # unclosed tag: no match -> 0
    ("</answer>(3+5)*2<answer>", N, 16, 0.0),  # close before open: no match
    ("<ANSWER>(3+5)*2</ANSWER>", N, 16, 0.0),  # tags are case-sensitive
    ("<answer >(3+5)*2</answer>", N, 16, 0.0),  # "<answer " is not "<answer>"
    ("<answer>(3+5)*2</answer>", N, 16, 1.0),
    ("<answer></answer>", N, 16, 0.1),  # empty: no numbers != [2, 3, 5] -> format score
    ("<answer>  \n </answer>", N, 16, 0.1),  # strips to "" -> as empty
    ("<answer>()</answer>", N, 16, 0.1),  # no numbers
    ("<answer>\n(3+5)*2\n</answer>", N, 16, 1.0),  # d1's own layout; strip()
    ("<reasoning>\n3+5=8\n</reasoning>\n<answer>\n2*(5+3)\n</answer>\n", N, 16, 1.0),
    ("<answer>1</answer> then <answer>(3+5)*2</answer>", N, 16, 1.0),  # last match wins
    ("<answer>(3+5)*2</answer> then <answer>3+5+2</answer>", N, 16, 0.1),  # last is wrong
    ("<answer>(3+5)*2</answer><answer>", N, 16, 1.0),  # trailing open tag never matches
    # A match runs from the FIRST open tag to the first close: "1<answer>(3+5)*2" holds
    # 1, 3, 5, 2 -> numbers differ -> 0.1.
    ("<answer>1<answer>(3+5)*2</answer>", N, 16, 0.1),
    # Same, but the span "<answer>(3+5)*2" has the right numbers and a "<" -> pattern fails.
    ("<answer><answer>(3+5)*2</answer>", N, 16, 0.1),
    ("3 5 2 16 <answer>(3+5)*2</answer> = 16", N, 16, 1.0),  # text outside is ignored
    # --- "= target" appended ---
    ("<answer>(3+5)*2 = 16</answer>", N, 16, 0.1),  # numbers 3, 5, 2, 16 -> 0.1
    ("<answer>3+5*2 = 13</answer>", N, 13, 0.1),  # the audit's case
    ("<answer>3+5*2=</answer>", N, 13, 0.1),  # numbers fine, "=" fails the pattern
    ("<answer>3+5*2</answer>", N, 13, 1.0),
    # --- unary +, **, // ---
    ("<answer>+3+5*2</answer>", N, 13, 1.0),  # unary plus evaluates: 13
    ("<answer>+(3+5)*+2</answer>", N, 16, 1.0),
    ("<answer>--3+5*2</answer>", N, 13, 1.0),  # -(-3) + 10
    ("<answer>-3+5*2</answer>", N, 7, 1.0),
    ("<answer>(5+3)**2</answer>", N, 64, 1.0),  # ** evaluates: 8**2
    ("<answer>2**5-3</answer>", N, 29, 1.0),
    ("<answer>(3+5)//2</answer>", N, 4, 1.0),  # // evaluates: 8//2
    ("<answer>5//2*3</answer>", N, 6, 1.0),  # floor division: 2*3, not 7.5
    ("<answer>5/2*3</answer>", N, 7, 0.1),  # true division: 7.5
    ("<answer>3**5**2</answer>", N, 16, 0.1),  # 3**25, a big int, is not 16
    ("<answer>(3-5)**.2</answer>", (3, 5, 2), 1, 0.1),  # ".2": numbers 3, 5, 2; complex
    # (-1)**.5 is complex 6e-17+1j; squared it is -1+1.2e-16j, within 1e-5 of -1 -> 1.0.
    ("<answer>((-1)**.5)**2</answer>", (1, 5, 2), -1, 1.0),
    # --- extra, missing and reused numbers ---
    ("<answer>(3+5)*2+1-1</answer>", N, 16, 0.1),  # extra numbers
    ("<answer>(3+5)*2*1</answer>", N, 16, 0.1),
    ("<answer>8*2</answer>", N, 16, 0.1),  # numbers missing
    ("<answer>(3+5)*3</answer>", N, 24, 0.1),  # 3 reused, 2 unused
    ("<answer>(3+5)*2*2</answer>", N, 32, 0.1),  # 2 reused
    ("<answer>16</answer>", N, 16, 0.1),
    ("<answer>(3+5)*2.0</answer>", N, 16, 0.1),  # "2.0" holds the numbers 2 and 0
    ("<answer>(3+5)*2.</answer>", N, 16, 1.0),  # "2." is the float 2.0: numbers fine
    ("<answer>(3+5)*02</answer>", N, 16, 0.1),  # int("02") == 2, but eval: SyntaxError
    # --- characters, syntax and arithmetic errors ---
    ("<answer>(3+5)x2</answer>", N, 16, 0.1),  # "x" fails the pattern
    ("<answer>abs(3+5)*2</answer>", N, 16, 0.1),
    ("<answer>(3+5)*2)</answer>", N, 16, 0.1),  # eval: SyntaxError -> None -> 0.1
    ("<answer>(3+5) 2</answer>", N, 16, 0.1),
    ("<answer>(3)(5)(2)</answer>", N, 16, 0.1),  # eval: int is not callable
    ("<answer>2/(3-3)</answer>", (3, 3, 2), 1, 0.1),  # ZeroDivisionError
    ("<answer>10**400/1</answer>", (10, 400, 1), 1, 0.1),  # int too large for a float
    ("<answer>(3+5)*2...</answer>", N, 16, 0.1),  # "2..." is a syntax error
    ("<answer>1e1</answer>", (1, 1), 10, 0.1),  # "e" fails the pattern
    # --- whitespace ---
    ("<answer>\t( 3 + 5 ) * 2 \t</answer>", N, 16, 1.0),
    ("<answer>(3 + 5) * 2\n</answer>", (2, 3, 5), 16, 1.0),  # number order is free
    ("<answer>(3+5\n)*2</answer>", N, 16, 1.0),  # newline inside brackets: fine in eval
    ("<answer>(3+5)\n*2</answer>", N, 16, 0.1),  # newline at top level: SyntaxError
    ("<answer>(3+5)*2\u00a0</answer>", N, 16, 1.0),  # strip() removes a no-break space
    ("<answer>(3+5)\u00a0*2</answer>", N, 16, 0.1),  # \s accepts it, eval does not
    # --- Unicode digits: \d and int() accept them, eval does not ---
    ("<answer>\u0663+\u0665*\u0662</answer>", N, 13, 0.1),  # Arabic-Indic 3+5*2
    ("<answer>(3+5)*\uff12</answer>", N, 16, 0.1),  # fullwidth 2
    # --- float tolerance ---
    ("<answer>7/3*3</answer>", (7, 3, 3), 7, 1.0),  # 7.000000000000001: within 1e-5
    ("<answer>1/3*3</answer>", (1, 3, 3), 1, 1.0),
]


@pytest.mark.parametrize(("completion", "numbers", "target", "expected"), TABLE)
def test_reward_matches_d1(completion: str, numbers: tuple, target: int, expected: float) -> None:
    assert d1_countdown_reward(completion, numbers, target) == expected
    task = CountdownTask()  # d1 is the default mode
    example = Example(prompt="", target="", meta={"numbers": numbers, "target": target})
    assert task.reward(completion, example) == expected
    assert task.accuracy(completion, example) == (expected == 1.0)


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 40


@pytest.mark.parametrize(
    ("completion", "numbers", "target"),
    [
        # d1's eval would run out of memory (or never return) on these; ours refuses the
        # power at once, which is what d1's except would score: 0.1.
        ("<answer>99**99**99</answer>", (99, 99, 99), 1),
        ("<answer>2**9999999</answer>", (2, 9999999), 1),
        # Deliberate difference: an integer beyond 100000 bits is refused even where eval
        # would finish and cancel it back down (d1: 2 -> 1.0; here 0.1).
        ("<answer>2**200000//2**199999</answer>", (2, 200000, 2, 199999), 2),
        ("<answer>" + "(" * 300 + "1" + ")" * 300 + "</answer>", (1,), 1),  # parser limit
        ("<answer>" + "9" * 5000 + "</answer>", (1,), 1),  # int() limit: not the numbers
    ],
)
def test_bounds_score_format_reward(completion: str, numbers: tuple, target: int) -> None:
    assert d1_countdown_reward(completion, numbers, target) == 0.1


def test_many_open_tags_are_linear() -> None:
    assert d1_countdown_reward("<answer>" * 100_000, (1,), 1) == 0.0
