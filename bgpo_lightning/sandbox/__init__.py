"""A sandbox for untrusted model-written Python, and the harness that tests it.

Standard library only. :func:`run_program` runs one program against trusted tests,
:func:`run_many` many in parallel; :func:`isolation_report` says which isolation layers this
machine provides. The design (process tree, isolation layers, why a pass cannot be faked) is
described in :mod:`.inside.boot`, :mod:`.inside.harness` and :mod:`.runner`.
"""

from bgpo_lightning.sandbox.isolation import describe_isolation, isolation_report
from bgpo_lightning.sandbox.limits import SandboxLimits
from bgpo_lightning.sandbox.pool import SandboxJob, default_workers, run_many
from bgpo_lightning.sandbox.result import SandboxResult, Status
from bgpo_lightning.sandbox.runner import ISOLATION_MODES, run_program

__all__ = [
    "ISOLATION_MODES",
    "SandboxJob",
    "SandboxLimits",
    "SandboxResult",
    "Status",
    "default_workers",
    "describe_isolation",
    "isolation_report",
    "run_many",
    "run_program",
]
