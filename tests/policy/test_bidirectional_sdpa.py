"""The SDPA attention that leaves the all-visible mask out of compiled forwards."""

import pytest
import torch
import transformers.masking_utils
from transformers.masking_utils import bidirectional_mask_function, causal_mask_function

from bgpo_lightning.policy import DiffusionLM, make_bidirectional
from bgpo_lightning.policy.bidirectional_sdpa import NAME, bidirectional_sdpa_mask
from tests.helpers import random_sequences, tiny_policy


@pytest.fixture(params=[False, True], ids=["torch>=2.14", "torch<2.14"])
def reports_exporting(request, monkeypatch) -> bool:
    """Dynamo before pytorch#176499 (torch < 2.14) reports every compiled forward as an
    export, which is what makes transformers build the mask; simulated on any torch (only
    for transformers' masks: torch.compile itself skips what it takes for an export)."""
    if request.param:
        monkeypatch.setattr(
            transformers.masking_utils, "is_torchdynamo_exporting", torch.compiler.is_compiling
        )
    return request.param


def compiled_attention_masks(policy: DiffusionLM, x: torch.Tensor, mask=None) -> list[bool]:
    """For each attention call of the compiled forward, whether it is given a mask."""
    masked = []

    def backend(graph_module, example_inputs):
        for node in graph_module.graph.nodes:
            if "scaled_dot_product_attention" in str(node.target):
                positional = node.args[3] if len(node.args) > 3 else None
                masked.append(node.kwargs.get("attn_mask", positional) is not None)
        return graph_module.forward

    model = policy.model
    torch.compiler.reset()
    model.forward = torch.compile(model.forward, backend=backend)
    try:
        with torch.no_grad():
            policy(x, attention_mask=mask)
    finally:
        del model.forward
        torch.compiler.reset()
    return masked


def test_built_models_use_it():
    assert tiny_policy().model.config._attn_implementation == NAME


def test_a_compiled_unpadded_forward_gives_attention_no_mask(reports_exporting):
    # Without a mask SDPA can take a fused CUDA kernel; transformers' all-true mask is
    # expanded from a scalar (stride 0), which every fused kernel refuses.
    policy = tiny_policy().eval()
    x = random_sequences(2, 5, 6)
    unpadded = compiled_attention_masks(policy, x, torch.ones_like(x))
    assert unpadded and not any(unpadded)
    padding = torch.ones_like(x)
    padding[0, :2] = 0
    assert all(compiled_attention_masks(policy, x, padding))  # padding still needs its mask


def test_stock_sdpa_masks_a_compiled_unpadded_forward_where_torch_reports_exporting(
    reports_exporting,
):
    # The case the attention above exists for (and proof that the fixture simulates it).
    policy = tiny_policy().eval()
    policy.model.set_attn_implementation("sdpa")
    x = random_sequences(2, 5, 6)
    masked = compiled_attention_masks(policy, x)
    assert masked and all(masked) == reports_exporting


def test_logits_equal_stock_sdpa_with_and_without_padding(reports_exporting):
    policy = tiny_policy(seed=4).eval()
    stock = tiny_policy(seed=4).eval()
    stock.model.set_attn_implementation("sdpa")
    x = random_sequences(3, 5, 7)
    padding = torch.ones_like(x)
    padding[1, :3] = 0
    with torch.no_grad():
        for mask in (None, padding):
            torch.testing.assert_close(policy(x, mask), stock(x, mask), rtol=0, atol=1e-6)


def mask_arguments(**overrides) -> dict:
    arguments = dict(
        batch_size=2,
        q_length=3,
        kv_length=4,
        mask_function=bidirectional_mask_function,
        attention_mask=None,
        allow_is_causal_skip=False,
        allow_is_bidirectional_skip=False,  # as transformers asks while it may be exporting
    )
    return {**arguments, **overrides}


def test_the_mask_is_left_out_only_where_it_would_be_all_true():
    assert bidirectional_sdpa_mask(**mask_arguments()) is None
    padding = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    cases = {
        "padding": mask_arguments(attention_mask=padding),
        "causal": mask_arguments(mask_function=causal_mask_function),
        "window": mask_arguments(local_size=2),
    }
    for name, arguments in cases.items():
        mask = bidirectional_sdpa_mask(**arguments)
        assert mask is not None, name
        assert mask.shape == (2, 1, 3, 4), name
    assert bidirectional_sdpa_mask(**cases["padding"])[0, 0, :, 0].logical_not().all()


def test_a_model_on_another_attention_is_left_alone():
    policy = tiny_policy()
    policy.model.set_attn_implementation("eager")
    make_bidirectional(policy.model)
    assert policy.model.config._attn_implementation == "eager"
