"""DiffusionRLModule end to end on the CPU with a 2-layer model."""

from pathlib import Path

import lightning as L
import pytest
import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.optim import OptimConfig
from tests.modules.conftest import rl_kwargs


class GradientGrab(L.Callback):
    """Records the flat gradient of the first optimizer step and that step's advantages."""

    def __init__(self):
        self.grad = None
        self.advantages = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.advantages is None:
            self.advantages = outputs["rollout"].advantages

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.grad is None:
            self.grad = torch.cat([p.grad.flatten().clone() for p in pl_module.policy.parameters()])


def trainer(tmp_path, max_steps, **kwargs):
    defaults = dict(
        default_root_dir=tmp_path,
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        log_every_n_steps=1,
    )
    defaults.update(kwargs)
    return L.Trainer(**defaults)


def module(seed=0, **overrides):
    torch.manual_seed(seed)  # the tiny model's initial weights
    return DiffusionRLModule(**rl_kwargs(**overrides))


def first_step_gradient(tmp_path, data, **overrides):
    grab = GradientGrab()
    model = module(**overrides)
    trainer(tmp_path, 1, precision="64-true", callbacks=[grab], logger=False).fit(model, data)
    return grab


ESTIMATORS = {
    "stratified": None,
    "sdmc": {"rule": "gauss_legendre", "nodes": 3},  # BGPO x SDMC
    "complementary": None,  # BGPO x complementary masks
}


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("coupled", ["vrpo_ol", "gdpo"])
def test_bgpo_gradient_equals_the_coupled_gradient_through_the_module(
    tmp_path, sudoku_data, estimator, coupled
):
    """On-policy, BGPO's per-sample backwards give the coupled objective's gradient, for the
    plain Monte Carlo masks, the SDMC quadrature (weights w_n) and complementary pairs."""
    settings = {"estimator": estimator, "estimator_settings": ESTIMATORS[estimator]}
    settings["num_mc_samples"] = 6 if estimator != "stratified" else 3
    # GDPO centres advantages only by default; the same advantages make the runs comparable.
    coupled_settings = {"normalize_std": True} if coupled == "gdpo" else None
    bgpo = first_step_gradient(tmp_path / "bgpo", sudoku_data, objective="bgpo", **settings)
    other = first_step_gradient(
        tmp_path / coupled,
        sudoku_data,
        objective=coupled,
        objective_settings=coupled_settings,
        **settings,
    )
    assert bgpo.grad.dtype == torch.float64
    advantages = bgpo.advantages
    assert (advantages > 0).any() and (advantages < 0).any()  # both signs take part
    torch.testing.assert_close(advantages, other.advantages, rtol=0, atol=0)
    assert other.grad.norm() > 1e-6
    rel = (bgpo.grad - other.grad).norm() / other.grad.norm()
    assert rel < 1e-8, rel


def test_fit_changes_every_parameter_logs_and_resumes(tmp_path, sudoku_data):
    model = module(optim=OptimConfig(lr=1e-2))
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters()}
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    fit = trainer(tmp_path, 3, val_check_interval=3, callbacks=[checkpoint])
    fit.fit(model, sudoku_data)
    unchanged = [n for n, p in model.policy.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, unchanged
    assert fit.global_step == 3
    events = list(Path(fit.log_dir).glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    for key in ("train/reward", "train/loss", "train/grad_norm", "time/rollout_s", "val/accuracy"):
        assert key in fit.logged_metrics or key in fit.callback_metrics, key
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert {"mask", "rollout"} <= set(state["generator_states"])
    assert state["optimizer_states"] and state["lr_schedulers"]

    resumed = module(seed=1, optim=OptimConfig(lr=1e-2))
    fit2 = trainer(tmp_path, 5)
    fit2.fit(resumed, sudoku_data, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert fit2.global_step == 5
    restored = resumed.generator("mask").get_state()
    assert not torch.equal(restored, torch.Generator().manual_seed(0).get_state())


def test_resume_replays_the_same_random_streams(tmp_path, sudoku_data):
    """Masks and rollouts after a resume equal those of an uninterrupted run."""
    straight = module()
    trainer(tmp_path / "a", 2, logger=False, enable_checkpointing=False).fit(straight, sudoku_data)
    first = module()
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer(tmp_path / "b", 1, logger=False, callbacks=[checkpoint]).fit(first, sudoku_data)
    resumed = module()
    trainer(tmp_path / "b", 2, logger=False, enable_checkpointing=False).fit(
        resumed, sudoku_data, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt")
    )
    for name in ("mask", "rollout"):
        assert torch.equal(
            straight.generator(name).get_state(), resumed.generator(name).get_state()
        )
    for a, b in zip(straight.policy.parameters(), resumed.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_inner_updates_step_the_optimizer_mu_times(tmp_path, sudoku_data):
    model = module(num_inner_updates=2, objective_settings={"kl_coef": 0.1})
    fit = trainer(tmp_path, 4, logger=False, enable_checkpointing=False)
    fit.fit(model, sudoku_data)
    assert fit.global_step == 4 and fit.fit_loop.epoch_loop.batch_progress.total.completed == 2
    # The frozen reference stays out of the checkpoint and the optimizer.
    assert not any(k.startswith("reference") for k in model.state_dict())
    optimized = {id(p) for g in model.optimizers().optimizer.param_groups for p in g["params"]}
    assert all(not p.requires_grad and id(p) not in optimized for p in model.reference.parameters())


def test_nonfinite_loss_skips_updates_then_stops(tmp_path, sudoku_data):
    model = module(max_nonfinite_steps=2)
    with torch.no_grad():
        model.policy.model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite loss"), pytest.warns(UserWarning):
        trainer(tmp_path, 5, logger=False, enable_checkpointing=False).fit(model, sudoku_data)
    assert model.global_step == 0  # no optimizer step was taken with NaN gradients


def test_reward_that_raises_is_zero_and_counted_or_raises(tmp_path, sudoku_data, monkeypatch):
    sudoku_data.setup("fit")

    def broken(self, completion, example):
        raise KeyError("boom")

    monkeypatch.setattr(type(sudoku_data.task), "reward", broken)
    model = module()
    with pytest.warns(UserWarning, match="boom"):
        trainer(tmp_path, 1, logger=False, enable_checkpointing=False).fit(model, sudoku_data)
    assert model.reward_errors == 8
    with pytest.raises(RuntimeError, match="reward of task 'sudoku' raised"):
        trainer(tmp_path, 1, logger=False, enable_checkpointing=False).fit(
            module(on_reward_error="raise"), sudoku_data
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"objective": "ppo"}, "unknown objective 'ppo'; choose one of: bgpo, "),
        ({"estimator": "cosine"}, "unknown estimator 'cosine'"),
        ({"objective_settings": {"clip": 0.2}}, "objective 'bgpo' has no setting 'clip'"),
        ({"estimator_settings": {"nodes": 3}}, "estimator 'stratified' has no setting 'nodes'"),
        ({"num_mc_samples": 0}, "num_mc_samples must be >= 1"),
        ({"gradient_sync": "sometimes"}, "gradient_sync must be 'last' or 'every'"),
    ],
)
def test_bad_configuration_is_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        DiffusionRLModule(**rl_kwargs(**overrides))


@pytest.mark.parametrize("shared", [False, True])
def test_rollout_masks_are_shared_within_a_group_only_when_asked(shared):
    model = module(share_masks_in_group=shared)  # G = 4
    masks = model.draw_rollout_masks(12, 16)
    assert masks.mask.shape == (2, 12, 16) and masks.weight.shape == (2, 12)
    groups = masks.mask.view(2, 3, 4, 16)
    same_in_group = all(torch.equal(groups[:, :, 0], groups[:, :, i]) for i in range(1, 4))
    assert same_in_group == shared
    assert not torch.equal(groups[:, 0], groups[:, 1])  # prompts still differ
    if shared:
        assert torch.equal(
            masks.weight.view(2, 3, 4)[..., 0:1].expand(2, 3, 4), masks.weight.view(2, 3, 4)
        )
