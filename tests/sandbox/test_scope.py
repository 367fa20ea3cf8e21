"""Which names of the trusted code keep their trusted meaning (never the program's)."""

from __future__ import annotations

from bgpo_lightning.sandbox.inside import scope

SOURCE = """
import math
from typing import List as L
x = 1
def helper():
    global late
    late = 2
    return poly(1)
class Node:
    def method(self):
        global from_method
        from_method = 3
        local = 4
for i in range(3):
    pass
if False:
    never = 5
print(candidate)
"""


def test_bound_names_cover_every_module_level_binding() -> None:
    names = scope.bound_names(SOURCE, "<setup>")
    assert names == {"math", "L", "x", "helper", "late", "Node", "from_method", "i", "never"}


def test_used_but_unbound_names_are_left_to_the_program() -> None:
    names = scope.bound_names(SOURCE, "<setup>")
    used = scope.global_names(compile(SOURCE, "<setup>", "exec"))
    assert {"poly", "candidate", "print", "range"} <= used - names
