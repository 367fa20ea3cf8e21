"""compiled_forward: compiled while sampling, made once per model, eager outside the block."""

import pytest
import torch
from torch import nn

from bgpo_lightning.policy.compiled_forward import compiled_forward, drop_compiled_forward


def test_calls_inside_run_the_compiled_forward_and_outside_the_eager_one(compiles):
    model = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    eager = model(x)
    for _ in range(2):  # two rollouts share one compiled callable
        with compiled_forward(model):
            assert torch.equal(model(x), eager)
        assert "forward" not in vars(model)
        model(x)  # a training call between rollouts
    assert len(compiles) == 1 and compiles[0].calls == 2
    assert "_sampling_forward" not in model.state_dict() and not list(model.children())


def test_disabled_or_nested_blocks_compile_nothing_more(compiles):
    model = nn.Linear(3, 2)
    with compiled_forward(model, enabled=False):
        assert "forward" not in vars(model)
    with compiled_forward(model):
        with compiled_forward(model):
            model(torch.randn(1, 3))
        assert "forward" in vars(model)  # the inner block left the outer one's in place
    assert len(compiles) == 1 and compiles[0].calls == 1


def test_the_eager_forward_comes_back_when_the_block_raises(compiles):
    model = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match="in the rollout"), compiled_forward(model):
        raise RuntimeError("in the rollout")
    assert "forward" not in vars(model)


def test_a_dropped_compiled_forward_is_made_again(compiles):
    model = nn.Linear(3, 2)
    with compiled_forward(model):
        pass
    drop_compiled_forward(model)
    with compiled_forward(model):
        pass
    assert len(compiles) == 2
