"""Which names of the trusted code may resolve to the program's objects.

The trusted code (setup and tests) runs in the harness's namespace. A name it uses but never
binds (the entry point, MBPP's function under test) means the program's object of that name.
A name it binds (a helper from the prompt, ``check``, a setup object, an import) always means
the trusted definition, even where the program defines the same name: otherwise the program
would decide what the tests check against.
"""

from __future__ import annotations

import symtable
from types import CodeType


def global_names(code: CodeType) -> set[str]:
    """Every global (or attribute) name used anywhere in ``code`` and its nested code."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= global_names(const)
    return names


def bound_names(source: str, filename: str) -> set[str]:
    """Names ``source`` may bind in its module namespace.

    Assignments, ``def``, ``class`` and imports at module level (in branches and loops too),
    and names a nested function declares ``global`` and assigns. Counted whether or not the
    binding runs, so a trusted name is never taken from the program.

    Raises:
        SyntaxError: If ``source`` does not compile.
    """
    table = symtable.symtable(source, filename, "exec")
    names = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    stack = list(table.get_children())
    while stack:
        nested = stack.pop()
        stack.extend(nested.get_children())
        names |= {
            s.get_name()
            for s in nested.get_symbols()
            if s.is_declared_global() and (s.is_assigned() or s.is_imported())
        }
    return names
