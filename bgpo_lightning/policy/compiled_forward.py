"""The model's forward through ``torch.compile`` while sampling (``SamplerConfig.compile``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

_COMPILED = "_sampling_forward"  # where the compiled callable is kept on the model


@contextlib.contextmanager
def compiled_forward(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, calls of ``model`` run its forward through ``torch.compile``.

    The compiled callable is made on first use and kept on the model, so every later rollout
    reuses its graphs; outside the block (the training forward and backward) the model stays
    eager. An instance attribute ``forward`` shadows the class's, which is what
    ``nn.Module.__call__`` runs, hooks included.
    """
    if not enabled or "forward" in vars(model):  # off, or already inside such a block
        yield
        return
    compiled = vars(model).get(_COMPILED)
    if compiled is None:
        compiled = torch.compile(model.forward)
        # Through __dict__: a plain attribute, not a submodule or a state_dict entry.
        vars(model)[_COMPILED] = compiled
    model.forward = compiled
    try:
        yield
    finally:
        del model.forward


def drop_compiled_forward(model: nn.Module) -> None:
    """Forgets the model's compiled forward: the next block compiles afresh (a benchmark that
    times each mode's own compile calls this, with ``torch._dynamo.reset()``)."""
    vars(model).pop(_COMPILED, None)
