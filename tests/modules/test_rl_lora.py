"""BGPO with a LoRA policy through the RL module: only the adapter trains and is checkpointed,
the KL reference is the base with the adapter disabled (no copy), export merges the adapter,
and rollouts with the adapter merged (merge_lora) sample and train as the unmerged ones."""

import lightning as L
import pytest
import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file
from torch.utils.data import DataLoader

import bgpo_lightning.policy.reference as reference_module
from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.policy import (
    AdapterDisabledReference,
    DiffusionLM,
    LoraSpec,
    PolicySpec,
    adapter_disabled,
    adapter_of,
    build_policy,
)
from bgpo_lightning.policy.compiled_forward import drop_compiled_forward
from bgpo_lightning.tasks import PromptDataModule
from bgpo_lightning.tasks.datamodule import collate_examples
from tests.helpers import TINY, perturb_adapter, random_sequences
from tests.modules.test_rl_module import module, trainer

LORA = LoraSpec(r=4, alpha=8.0)
KL = {"kl_coef": 0.1}


def lora_module(seed=0, **overrides):
    """The RL test module with a LoRA policy, a KL term and a learning rate that moves it."""
    overrides.setdefault("policy", PolicySpec(tiny=TINY, lora=LORA))
    overrides.setdefault("objective_settings", KL)
    overrides.setdefault("optim", OptimConfig(lr=1e-2))
    return module(seed, **overrides)


def probe() -> torch.Tensor:
    return random_sequences(3, 6, 16, seed=7)


def adapter_names(model) -> set[str]:
    return {n for n, p in model.policy.named_parameters() if p.requires_grad}


def test_only_the_adapter_trains_and_reaches_the_optimizer(tmp_path, sudoku_data):
    model = lora_module()
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters()}
    trainable = adapter_names(model)
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    trainer(tmp_path, 2, logger=False, enable_checkpointing=False).fit(model, sudoku_data)
    optimizer = model.optimizers().optimizer
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.policy.parameters() if p.requires_grad}
    for name, p in model.policy.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved == (name in trainable), name


def test_reference_is_the_base_with_the_adapter_disabled(tmp_path, sudoku_data, monkeypatch):
    ids = probe()
    with torch.no_grad():  # same seed, same base weights, no adapter
        initial_base = module(objective_settings=KL).policy(ids)
    monkeypatch.setattr(reference_module, "frozen_copy", lambda *a, **k: pytest.fail("copied"))
    model = lora_module()
    reference = model.reference
    assert isinstance(reference, AdapterDisabledReference) and reference.policy is model.policy
    torch.testing.assert_close(reference(ids), initial_base, rtol=0, atol=0)

    calls = []
    original = AdapterDisabledReference.__call__

    def counted(self, *args, **kwargs):
        calls.append(self.policy.training)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AdapterDisabledReference, "__call__", counted)
    trainer(tmp_path, 2, logger=False, enable_checkpointing=False).fit(model, sudoku_data)
    assert calls and all(calls)  # the KL term asked it, during training, in training mode
    with torch.no_grad():
        trained = model.policy(ids)
        torch.testing.assert_close(model.reference(ids), initial_base, rtol=0, atol=0)
    assert (trained - initial_base).abs().max() > 1e-4
    assert model.policy.training  # the reference's eval mode did not leak


class OneBatchData(PromptDataModule):
    """Every step trains on the same two prompts: a resumed run sees the batches of the
    uninterrupted one (a shuffled epoch restarted mid-way would not)."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.examples("train")[:2], batch_size=2, collate_fn=collate_examples)


def test_checkpoint_keeps_the_adapter_only_and_resumes_identically(tmp_path):
    compact = {"prompt_template": "Sudoku {puzzle}=", "target_template": "{solution}"}
    data = OneBatchData(task="sudoku", task_kwargs={**compact, "reward_mode": "lenient"})

    def run(directory, steps, model, ckpt_path=None, **kwargs):
        kwargs = {"enable_checkpointing": False, **kwargs}
        fit = trainer(tmp_path / directory, steps, limit_val_batches=0, logger=False, **kwargs)
        fit.fit(model, data, ckpt_path=ckpt_path)
        return model

    straight = run("a", 2, lora_module())
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = run("b", 1, lora_module(), callbacks=[checkpoint], enable_checkpointing=True)
    last = str(tmp_path / "ckpt" / "last.ckpt")
    state = torch.load(last, weights_only=True)
    assert set(state["state_dict"]) == {"policy." + n for n in adapter_names(first)}
    assert len(state["optimizer_states"][0]["state"]) == len(adapter_names(first))

    resumed = run("b", 2, lora_module(), ckpt_path=last)
    named = dict(straight.policy.named_parameters())
    after_first = dict(first.policy.named_parameters())
    for name, p in resumed.policy.named_parameters():
        torch.testing.assert_close(p, named[name], rtol=1e-6, atol=1e-7, msg=name)
        assert torch.equal(p, after_first[name]) == (name not in adapter_names(first)), name

    with pytest.raises(ConfigError, match="trained on another base model"):
        run("c", 2, lora_module(seed=1), ckpt_path=last)

    # Outside a Trainer: the LoRA spec comes back from the saved hyperparameters.
    torch.manual_seed(0)  # the embedded base's weights, as module() seeds them
    loaded = DiffusionRLModule.load_from_checkpoint(last)
    assert adapter_of(loaded.policy) is not None
    for name, p in loaded.policy.named_parameters():
        torch.testing.assert_close(p, after_first[name], rtol=0, atol=0, msg=name)


def test_save_hf_writes_the_merged_model_and_the_adapter(tmp_path, sudoku_data):
    model = lora_module()
    fit = trainer(tmp_path, 1, precision="64-true", logger=False, enable_checkpointing=False)
    fit.fit(model, sudoku_data)
    ids = probe()
    with torch.no_grad():
        live = model.policy(ids)
    directory = model.save_hf(tmp_path / "hf")

    weights = load_file(directory / "model.safetensors")
    assert not any("lora" in k or "base_layer" in k for k in weights)
    loaded, _ = build_policy(PolicySpec(path=str(directory)))
    assert adapter_of(loaded) is None
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), live, rtol=1e-10, atol=1e-10)
        # The live policy keeps its adapter and its outputs.
        assert any(isinstance(m, LoraLayer) for m in model.policy.modules())
        torch.testing.assert_close(model.policy(ids), live, rtol=0, atol=0)

    # The adapter alone, in peft's format, on a fresh copy of the base.
    base = module(objective_settings=KL).policy.model.double()
    adapted = PeftModel.from_pretrained(base, directory / "adapter")
    with torch.no_grad():
        again = DiffusionLM(adapted.get_base_model(), model.policy.mask_token_id)(ids)
    torch.testing.assert_close(again, live, rtol=1e-10, atol=1e-10)


class AdapterGradient(L.Callback):
    def __init__(self):
        self.grad = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.grad is None:
            grads = [p.grad.flatten() for p in pl_module.policy.parameters() if p.requires_grad]
            self.grad = torch.cat(grads).clone()


def test_lora_with_checkpointing_and_cached_rollouts(tmp_path, sudoku_data):
    """Everything together: the same first-step gradient with and without checkpointing
    (the prefix cache and the sampler alone: tests/policy/test_gradient_checkpointing.py)."""
    rollout = SamplerConfig(gen_length=16, block_length=8, steps=4, temperature=1.0, cache="dual")
    grads = []
    for checkpointing in (False, True):
        policy = PolicySpec(tiny=TINY, lora=LORA, gradient_checkpointing=checkpointing)
        grab = AdapterGradient()
        fit = trainer(
            tmp_path / str(checkpointing), 1, precision="64-true", logger=False, callbacks=[grab]
        )
        fit.fit(lora_module(policy=policy, rollout=rollout), sudoku_data)
        grads.append(grab.grad)
    assert grads[0].norm() > 1e-6
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)


def test_reference_dtype_needs_a_separate_copy():
    with pytest.raises(ConfigError, match="reference_dtype needs a separate reference copy"):
        lora_module(reference_dtype="bfloat16")


def test_merged_rollouts_give_the_adapter_paths_tokens():
    model = lora_module()
    model.policy.double().eval()  # float64: merged and unmerged logits agree to rounding
    perturb_adapter(model.policy, std=0.5)  # a trained adapter, not the zero it starts at
    ids, mask = model.prompt_tensors(["12+3=", "7*8-1=", "4="])

    def sample(**changes) -> torch.Tensor:
        config = SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=1.0, **changes)
        return model.sample(ids, mask, config, torch.Generator().manual_seed(0))

    unmerged = sample()
    with adapter_disabled(model.policy):
        assert not torch.equal(sample(), unmerged)  # the adapter changes the tokens
    assert torch.equal(sample(merge_lora=True), unmerged)
    dual = sample(cache="dual")
    assert torch.equal(sample(merge_lora=True, cache="dual"), dual)
    assert torch.equal(sample(merge_lora=True, cache="dual", cuda_graph=True), dual)


def test_merged_rollouts_train_as_the_unmerged_ones(tmp_path, sudoku_data):
    grads = []
    for merge in (False, True):
        rollout = SamplerConfig(16, 8, 4, temperature=1.0, merge_lora=merge)
        grab = AdapterGradient()
        fit = trainer(tmp_path / str(merge), 1, precision="64-true", logger=False, callbacks=[grab])
        model = lora_module(rollout=rollout)
        base = {n: p.detach().clone() for n, p in model.policy.named_parameters() if "base" in n}
        fit.fit(model, sudoku_data)
        grads.append(grab.grad)
        for name, p in model.policy.named_parameters():
            if name in base:
                assert torch.equal(p.detach().cpu(), base[name])  # the frozen base, bit for bit
    assert grads[0].norm() > 1e-6
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("key", ["rollout", "eval_sampler"])
def test_merge_lora_without_an_adapter_is_a_config_error(key):
    sampler = SamplerConfig(16, 8, 4, merge_lora=True)
    with pytest.raises(ConfigError, match=rf"^{key}\.merge_lora needs a LoRA policy"):
        module(**{key: sampler})


def test_compiled_merged_rollouts_compile_once_not_at_every_rollout(traced_graphs):
    # Each rollout merges into new stand-in weights; dynamo must take them as inputs, not
    # guard on them. traced_graphs records every compile.
    compiled_graphs = traced_graphs
    model = lora_module()
    model.policy.eval()
    ids, mask = model.prompt_tensors(["12+3=", "7*8-1="])
    rollout = SamplerConfig(16, 8, 4, temperature=1.0, compile=True, merge_lora=True)
    torch.compiler.reset()
    graphs = []
    try:
        for _ in range(3):
            before = len(compiled_graphs)
            model.sample(ids, mask, rollout, torch.Generator().manual_seed(0))
            graphs.append(len(compiled_graphs) - before)
    finally:
        drop_compiled_forward(model.policy.model)
        torch.compiler.reset()
    assert graphs[0] > 0 and graphs[1:] == [0, 0]
