"""GradientStatistics: the gradient it measures, its statistics, its outputs, and that training
does not notice it."""

import csv
import random
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.distributed as dist
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.nn.parallel import DistributedDataParallel
from torch.utils._python_dispatch import TorchDispatchMode

from bgpo_lightning import cli
from bgpo_lightning.callbacks.gradient_report import COLUMNS
from bgpo_lightning.callbacks.gradient_statistics import (
    GradientStatistics,
    measure_gradient_statistics,
    release_peak_memory,
    select_parameters,
)
from bgpo_lightning.diffusion.elbo import elbo_term
from bgpo_lightning.diffusion.masking import apply_mask, draw_masks
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.rollout import Rollout
from bgpo_lightning.objectives import vrpo_ol_objective
from bgpo_lightning.tasks import PromptDataModule
from tests.helpers import random_sequences
from tests.modules.conftest import rl_kwargs
from tests.objectives.test_bgpo import SavedActivationMeter
from tests.test_cli import BGPO, QUIET, SMALL_DATA, TINY_MODEL, in_tmp

N, PROMPT, LENGTH = 8, 6, 16


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture
def sudoku_data():
    return PromptDataModule(
        task="sudoku", num_train=32, num_val=8, num_test=8, batch_size=2, val_batch_size=8
    )


class DenseRewardRL(DiffusionRLModule):
    """A deterministic reward that varies with the text: the untrained model's Sudoku rewards
    all tie, and all-zero advantages leave nothing to measure."""

    def _scores(self, texts, examples):
        rewards = torch.tensor([sum(map(ord, text)) % 89 / 89 for text in texts])
        return rewards, torch.zeros_like(rewards)


def rl_module(seed=0, **overrides) -> DiffusionRLModule:
    torch.manual_seed(seed)  # the tiny model's initial weights
    return DenseRewardRL(**rl_kwargs(**overrides)).double()


def fixed_rollout(seed=0) -> Rollout:
    """Random token ids and advantages (the first prompt left-padded), float64."""
    sequences = random_sequences(N, PROMPT, LENGTH, seed=seed)
    prompt_mask = torch.ones(N, PROMPT, dtype=torch.long)
    prompt_mask[0, :2] = 0
    gen = torch.Generator().manual_seed(seed + 100)
    responses = sequences[:, PROMPT:]
    return Rollout(
        prompt_ids=sequences[:, :PROMPT],
        prompt_mask=prompt_mask,
        responses=responses,
        completion_mask=torch.ones_like(responses, dtype=torch.bool),
        rewards=torch.zeros(N),
        accuracy=torch.zeros(N),
        advantages=torch.randn(N, generator=gen, dtype=torch.float64),
        texts=[""] * N,
        examples=[],
    )


def all_graphs_gradient(module, rollout, num_samples, seed, params) -> torch.Tensor:
    """Reference: the textbook VRPO-OL loss, every sample's graph kept, one backward."""
    masks = draw_masks(N, LENGTH, num_samples, "stratified", torch.Generator().manual_seed(seed))
    sequences = torch.cat([rollout.prompt_ids, rollout.responses], dim=1)
    attention = torch.cat([rollout.prompt_mask, torch.ones_like(rollout.responses)], dim=1)
    elbos = []
    for j in range(num_samples):
        noisy = apply_mask(sequences, masks.mask[j], module.policy.mask_token_id)
        logits = module.policy(noisy, attention)[:, -LENGTH:]
        elbos.append(elbo_term(logits, rollout.responses, masks.mask[j], masks.weight[j]))
    elbos = torch.stack(elbos, dim=-1)
    loss = -vrpo_ol_objective(elbos, elbos.detach(), rollout.advantages).sum() / N
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])


# ---- the gradient ------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["bgpo", "vrpo_ol"])
def test_policy_gradient_equals_the_all_graphs_reference(objective):
    module = rl_module(micro_batch_size=3)  # ragged micro-batches: 3 + 3 + 2
    rollout = fixed_rollout()
    params = list(module.policy.parameters())
    expected = all_graphs_gradient(module, rollout, 3, seed=5, params=params)
    got = module.policy_gradient(rollout, 3, torch.Generator().manual_seed(5), objective)
    assert got.dtype == torch.float64 and expected.norm() > 1e-6
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-13)
    assert all(p.grad is None for p in params)  # .grad never written
    # A subset is the matching slice of the whole gradient.
    names = [n for n, _ in module.policy.named_parameters()]
    head = names.index("model.lm_head.weight")
    start = sum(p.numel() for p in params[:head])
    subset = module.policy_gradient(
        rollout, 3, torch.Generator().manual_seed(5), objective, params=[params[head]]
    )
    torch.testing.assert_close(subset, expected[start : start + params[head].numel()])


@pytest.mark.parametrize("objective", ["bgpo", "vrpo_ol"])
def test_policy_gradient_activation_memory_is_flat_in_n_t(objective):
    module = rl_module(micro_batch_size=N)
    rollout = fixed_rollout()
    peaks = {}
    for n_t in (1, 8):
        with SavedActivationMeter(module.policy.parameters()) as meter:
            module.policy_gradient(rollout, n_t, torch.Generator().manual_seed(0), objective)
        assert meter.live == 0
        peaks[n_t] = meter.peak
    assert peaks[8] == peaks[1], peaks


# ---- the statistics ----------------------------------------------------------------------------
def test_spread_bias_and_direction_improve_with_n_t():
    module = rl_module(micro_batch_size=N)
    params = list(module.policy.parameters())
    rows = measure_gradient_statistics(
        module, fixed_rollout(), ["bgpo"], [1, 4, 16], 8, 128, params
    )
    std = [r["mean_std"] for r in rows]
    bias = [r["bias"] for r in rows]
    cosine = [r["cosine"] for r in rows]
    assert std[0] > std[1] > std[2] and std[0] / std[2] > 2.0, std
    # Independent samples: std ~ n_t^-1/2 (measured slopes -0.37..-0.53 over seeds).
    slope = np.log(std[2] / std[0]) / np.log(16)
    assert -0.7 < slope < -0.3, slope
    # Unbiased on-policy: what is left is MC error, ~ 1/sqrt(R n_t) above the golden's own.
    assert bias[2] < 0.75 * bias[0], bias  # measured ratios 0.44..0.55 over seeds
    assert cosine[0] < cosine[1] < cosine[2] and cosine[2] > 0.8, cosine
    assert {r["num_params"] for r in rows} == {sum(p.numel() for p in params)}


def test_measurement_is_reproducible_and_leaves_the_global_rng_alone():
    module = rl_module(micro_batch_size=N)
    params = list(module.policy.parameters())

    def measure(seed):
        rows = measure_gradient_statistics(
            module, fixed_rollout(), ["bgpo"], [2], 2, 8, params, seed=seed, step=3
        )
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = measure(seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert measure(seed=0) == first
    assert measure(seed=1)[0]["mean_std"] != first[0]["mean_std"]


class FlatBufferCounter(TorchDispatchMode):
    """Counts fresh (neither view nor in-place) float64 tensors of a given size."""

    def __init__(self, numel):
        super().__init__()
        self.numel = numel
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        fresh = all(r.alias_info is None for r in func._schema.returns)
        outputs = out if isinstance(out, (tuple, list)) else [out]
        for tensor in outputs:
            if (
                fresh
                and isinstance(tensor, torch.Tensor)
                and tensor.dtype == torch.float64
                and tensor.numel() == self.numel
            ):
                self.count += 1
        return out


def test_flat_buffers_do_not_grow_with_repeats():
    module = rl_module(micro_batch_size=N)
    params = list(module.policy.parameters())
    numel = sum(p.numel() for p in params)
    counts = {}
    for repeats in (2, 6):
        with FlatBufferCounter(numel) as counter:
            measure_gradient_statistics(
                module, fixed_rollout(), ["bgpo"], [1, 2], repeats, 2, params
            )
        counts[repeats] = counter.count
    assert counts[2] == counts[6] > 0, counts


def test_parameter_subset_by_glob():
    policy = rl_module().policy
    chosen = select_parameters(policy, ["*.layers.0.*", "model.lm_head.weight"])
    names = [n for n, _ in chosen]
    assert "model.lm_head.weight" in names and all(
        n == "model.lm_head.weight" or ".layers.0." in n for n in names
    )
    assert len(select_parameters(policy, None)) == len(list(policy.parameters()))
    with pytest.raises(ConfigError, match="match no trainable policy parameter"):
        select_parameters(policy, ["*.nonexistent.*"])


# ---- in training -------------------------------------------------------------------------------
def fit(tmp_path, data, callbacks, max_steps=3, tensorboard=True):
    module = rl_module()  # float64 weights; the Trainer below runs in 64-true
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        logger=L.pytorch.loggers.TensorBoardLogger(tmp_path, name="tb") if tensorboard else False,
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        precision="64-true",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=callbacks,
    )
    trainer.fit(module, data)
    return trainer, module


def rng_states():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def assert_same_tree(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_tree(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tree(x, y)
    else:
        assert a == b


def test_fit_writes_csv_scalars_figure_and_does_not_perturb_training(tmp_path, sudoku_data):
    stats = GradientStatistics(
        every_n_steps=2,
        objectives=["bgpo", "vrpo_ol"],
        num_mc_samples=[1, 2],
        repeats=2,
        golden_num_mc_samples=4,
    )
    measured, with_stats = fit(tmp_path / "with", sudoku_data, [stats])
    after_with = rng_states()
    plain, without = fit(tmp_path / "without", sudoku_data, [])
    after_without = rng_states()

    # Same parameters, optimizer state, module streams, global streams, mode.
    for a, b in zip(with_stats.policy.parameters(), without.policy.parameters(), strict=True):
        assert torch.equal(a, b)
        assert a.grad is None and b.grad is None
    assert_same_tree(measured.optimizers[0].state_dict(), plain.optimizers[0].state_dict())
    assert with_stats._generators.keys() == without._generators.keys() == {"mask", "rollout"}
    for name in ("mask", "rollout"):
        assert torch.equal(
            with_stats.generator(name).get_state(), without.generator(name).get_state()
        )
    assert torch.equal(after_with[0], after_without[0])
    assert np.array_equal(after_with[1], after_without[1]) and after_with[2] == after_without[2]
    assert with_stats.policy.training == without.policy.training

    # Measured at step 2 only (every 2 steps of 3), one row per objective and n_t.
    log_dir = Path(measured.log_dir)
    with (log_dir / "gradient_statistics.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = list(reader)
    assert [(r["step"], r["objective"], r["n_t"]) for r in rows] == [
        ("2", "bgpo", "1"),
        ("2", "bgpo", "2"),
        ("2", "vrpo_ol", "1"),
        ("2", "vrpo_ol", "2"),
    ]
    assert all(r["golden_n_t"] == "4" and r["repeats"] == "2" for r in rows)
    assert rows[0]["num_params"] == str(sum(p.numel() for p in with_stats.policy.parameters()))
    # On-policy BGPO and VRPO-OL are one estimator; the same mask streams give the same numbers.
    for a, b in zip(rows[:2], rows[2:], strict=True):
        assert float(a["mean_std"]) == pytest.approx(float(b["mean_std"]), rel=1e-9)
        assert float(a["mean_std"]) > 0
    assert (log_dir / "gradient_statistics.png").stat().st_size > 0

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for objective in ("bgpo", "vrpo_ol"):
        for metric in ("std", "bias", "cosine"):
            for n_t in ("001", "002"):
                assert f"grad_stats/{objective}/{metric}/n_t={n_t}" in scalars
    (point,) = events.Scalars("grad_stats/bgpo/std/n_t=001")
    assert point.step == 2 and point.value == pytest.approx(float(rows[0]["mean_std"]), rel=1e-6)
    assert [image.step for image in events.Images("grad_stats/figure")] == [2]


def test_without_a_logger_the_csv_goes_to_default_root_dir(tmp_path, sudoku_data):
    stats = GradientStatistics(
        every_n_steps=1, num_mc_samples=[1], repeats=2, golden_num_mc_samples=2, log_figure=False
    )
    fit(tmp_path, sudoku_data, [stats], max_steps=1, tensorboard=False)
    lines = (tmp_path / "gradient_statistics.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("1,bgpo,1,2,")
    assert [r["objective"] for r in stats.last_rows] == ["bgpo"]  # the module's objective


# ---- DDP ---------------------------------------------------------------------------------------
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_measuring_does_not_involve_the_ddp_reducer(tmp_path):
    """A one-process gloo group. Even between a DDP forward and its backward (stricter than the
    callback's place, after the step) the measurement reduces nothing, and DDP's own backward
    still reduces. Control: an ordinary ``backward`` through the unwrapped policy there is
    taken by DDP's hooks for the step's backward."""
    dist.init_process_group(
        "gloo",
        init_method=(tmp_path / "store").as_uri(),
        rank=0,
        world_size=1,
        timeout=timedelta(seconds=60),
    )
    try:
        module = rl_module(micro_batch_size=N)
        ddp = DistributedDataParallel(module.policy)
        reduced = []

        def count(state, bucket):
            reduced.append(bucket.index())
            fut = torch.futures.Future()
            fut.set_result(bucket.buffer())
            return fut

        ddp.register_comm_hook(None, count)
        rollout = fixed_rollout()
        inputs = torch.cat([rollout.prompt_ids, rollout.responses], dim=1)
        for _ in range(2):
            out = ddp(inputs)
            before = len(reduced)
            module.policy_gradient(rollout, 2, torch.Generator().manual_seed(0), "bgpo")
            assert len(reduced) == before
            out.sum().backward()
            assert len(reduced) > before
        out = ddp(inputs)
        before = len(reduced)
        module.policy(inputs).sum().backward()
        assert len(reduced) > before
    finally:
        dist.destroy_process_group()


# ---- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objectives": ["ppo"]}, "unknown objective 'ppo'; choose one of: bgpo, "),
        ({"repeats": 1}, "repeats must be >= 2"),
        ({"num_mc_samples": [0, 2]}, "num_mc_samples must be distinct integers >= 1"),
        ({"every_n_steps": 0}, "every_n_steps must be >= 1"),
        ({"param_names": "lm_head"}, "param_names must be a non-empty list"),
        ({"estimator": "cosine"}, "unknown estimator 'cosine'"),
    ],
)
def test_bad_configuration_is_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GradientStatistics(**kwargs)


def test_needs_an_rl_module():
    with pytest.raises(ConfigError, match="needs an RL module"):
        GradientStatistics().setup(None, L.LightningModule(), "fit")


CALLBACK_YAML = """\
trainer:
  callbacks:
    - class_path: bgpo_lightning.callbacks.gradient_statistics.GradientStatistics
      init_args:
        every_n_steps: 7
        objectives: [{objective}]
        num_mc_samples: [1, 4]
        repeats: 3
        golden_num_mc_samples: 64
        param_names: ["model.lm_head.*"]
"""


def test_yaml_configures_the_callback(tmp_path, capsys):
    config = tmp_path / "stats.yaml"
    config.write_text(CALLBACK_YAML.format(objective="vrpo_ol"))
    args = ["--config", BGPO, "--config", str(config), *TINY_MODEL, *SMALL_DATA, *QUIET]
    built = cli.build_cli([*args, *in_tmp(tmp_path)], run=False)  # run=False: no subcommand
    (stats,) = [c for c in built.trainer.callbacks if isinstance(c, GradientStatistics)]
    assert stats.every_n_steps == 7 and stats.objectives == ["vrpo_ol"]
    assert stats.num_mc_samples == [1, 4] and stats.repeats == 3
    assert stats.golden_num_mc_samples == 64 and stats.param_names == ["model.lm_head.*"]

    capsys.readouterr()
    config.write_text(CALLBACK_YAML.format(objective="ppo"))
    assert cli.main(["fit", *args, *in_tmp(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ") and "'ppo'" in error[0], error


def test_the_measurement_peak_is_read_then_reset_so_the_next_step_does_not_count_it(
    monkeypatch,
):
    calls = []
    monkeypatch.setattr(
        torch.cuda, "max_memory_allocated", lambda d: calls.append("read") or 3 * 2**30
    )
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: calls.append("reset"))
    assert release_peak_memory(torch.device("cuda", 0)) == 3.0
    assert calls == ["read", "reset"]
    assert release_peak_memory(torch.device("cpu")) is None and calls == ["read", "reset"]
