"""DiffusionSFTModule on the CPU with a 2-layer model: it learns, logs and exports."""

from pathlib import Path

import lightning as L
import pytest
import torch

from bgpo_lightning.callbacks.hf_export import HFExport
from bgpo_lightning.diffusion.elbo import elbo_term
from bgpo_lightning.diffusion.masking import apply_mask, draw_masks
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules import DiffusionSFTModule
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.policy import PolicySpec, build_policy, encode_prompts, encode_responses
from bgpo_lightning.tasks import PromptDataModule
from tests.helpers import TINY, random_sequences
from tests.modules.conftest import GREEDY


class LossRecorder(L.Callback):
    """The training loss of every step."""

    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def sft_module(lr=3e-3, **overrides):
    torch.manual_seed(0)  # the tiny model's initial weights
    kwargs = dict(
        policy=PolicySpec(tiny=TINY),
        eval_sampler=GREEDY,
        optim=OptimConfig(lr=lr, weight_decay=0.0),
    )
    kwargs.update(overrides)
    return DiffusionSFTModule(**kwargs)


@torch.no_grad()
def fixed_loss(module, batch, num_samples=8):
    """The SFT loss of ``batch`` under fixed stratified masks (no randomness between calls)."""
    module.eval()
    prompt_ids, prompt_mask = encode_prompts(module.tokenizer, [e.prompt for e in batch])
    length = module.eval_sampler.gen_length
    responses = encode_responses(module.tokenizer, [e.target for e in batch], length)
    masks = draw_masks(
        len(batch), length, num_samples, "stratified", torch.Generator().manual_seed(0)
    )
    attention = torch.cat([prompt_mask, torch.ones_like(responses)], dim=1)
    terms = []
    for mask, weight in zip(masks.mask, masks.weight, strict=True):
        noisy = apply_mask(torch.cat([prompt_ids, responses], 1), mask, module.policy.mask_token_id)
        logits = module.policy(noisy, attention)[:, -length:]
        terms.append(-elbo_term(logits, responses, mask, weight).mean())
    module.train()
    return torch.stack(terms).mean().item()


def test_sft_lowers_the_loss_changes_every_parameter_exports_and_validates(tmp_path):
    data = PromptDataModule(
        task="sudoku", num_train=8, num_val=4, num_test=4, batch_size=8, val_batch_size=4
    )
    data.setup("fit")
    batch = data.examples("train")  # one fixed batch: every step trains on it
    assert all(e.target for e in batch)
    model = sft_module()
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters()}
    loss_before = fixed_loss(model, batch)
    recorder, export = LossRecorder(), HFExport()
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        logger=L.pytorch.loggers.TensorBoardLogger(tmp_path, name="sft"),
        max_steps=30,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        val_check_interval=30,
        check_val_every_n_epoch=None,
        limit_val_batches=1,
        log_every_n_steps=1,
        callbacks=[recorder, export],
    )
    trainer.fit(model, data)
    assert trainer.global_step == 30 and len(recorder.losses) == 30

    loss_after = fixed_loss(model, batch)
    assert loss_after < 0.7 * loss_before, (loss_before, loss_after)
    first, last = recorder.losses[:5], recorder.losses[-5:]
    assert sum(last) < 0.8 * sum(first), recorder.losses
    unchanged = [n for n, p in model.policy.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, unchanged

    for key in ("train/loss", "train/grad_norm", "val/accuracy", "val/accuracy_se"):
        assert key in trainer.callback_metrics, key
    accuracy = trainer.callback_metrics["val/accuracy"].item()
    assert 0.0 <= accuracy <= 1.0
    assert list(Path(trainer.log_dir).glob("events.out.tfevents.*"))

    # The export is where the callback says and loads back to the same logits.
    assert export.saved_to == Path(trainer.log_dir) / "hf_checkpoint"
    assert (export.saved_to / "config.json").is_file()
    loaded, tokenizer = build_policy(PolicySpec(path=str(export.saved_to)))
    assert loaded.mask_token_id == model.policy.mask_token_id == tokenizer.mask_token_id
    assert tokenizer.eos_token_id == model.tokenizer.eos_token_id
    loaded.eval()
    model.policy.eval()
    x = random_sequences(2, 6, 8)
    attention = torch.ones_like(x)
    attention[0, :3] = 0
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, attention), model.policy(x, attention))
    assert fixed_loss(model, batch) == pytest.approx(loss_after)


def test_hf_export_to_a_given_directory(tmp_path, sudoku_data):
    model = sft_module()
    export = HFExport(dirpath=str(tmp_path / "exported"))
    L.Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[export],
    ).fit(model, sudoku_data)
    assert export.saved_to == tmp_path / "exported"
    loaded, _ = build_policy(PolicySpec(path=str(export.saved_to)))
    x = random_sequences(1, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model.policy.eval()(x))


def test_sft_hyperparameters_are_plain_and_rebuild_the_module():
    model = sft_module(lr=1e-2, timestep_sampler="stratified")
    hparams = dict(model.hparams)
    assert hparams["timestep_sampler"] == "stratified"
    assert hparams["policy"]["tiny"]["num_layers"] == TINY.num_layers
    assert hparams["optim"]["lr"] == 1e-2
    rebuilt = DiffusionSFTModule(**hparams)
    assert rebuilt.optim.lr == 1e-2 and rebuilt.policy_spec.tiny == TINY
    assert DiffusionSFTModule(policy=PolicySpec(tiny=TINY)).optim.lr == 1e-3


def test_unknown_timestep_sampler_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown timestep_sampler 'cosine'"):
        sft_module(timestep_sampler="cosine")
