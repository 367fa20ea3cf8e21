"""The estimator study at toy size: exact ELBO, table lookups, recorded forwards, outputs."""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import time

import pytest
import torch

from bgpo_lightning.diffusion.estimators import build_estimator
from bgpo_lightning.modules.rollout import Rollout
from experiments.estimator_study.__main__ import run_study
from experiments.estimator_study.batch import build_module
from experiments.estimator_study.doc import CAVEATS, INTERPRETATION
from experiments.estimator_study.exact import exact_elbo, lookup_estimate, masked_log_prob_table
from experiments.estimator_study.grid import ELBO_ESTIMATORS, SPECS
from experiments.estimator_study.measure import StudySettings, forward_estimate, generator
from experiments.estimator_study.recorder import ForwardRecorder
from tests.helpers import TINY, random_sequences, tiny_policy

PROMPTS, GROUP, PROMPT = 2, 4, 5
N = PROMPTS * GROUP


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def toy_rollout(length: int, seed: int = 0) -> Rollout:
    """Random tokens, the first prompt left-padded, random non-zero advantages."""
    sequences = random_sequences(N, PROMPT, length, seed=seed)
    prompt_mask = torch.ones(N, PROMPT, dtype=torch.long)
    prompt_mask[0, :2] = 0
    responses = sequences[:, PROMPT:]
    rewards = torch.rand(N, generator=torch.Generator().manual_seed(seed))
    return Rollout(
        prompt_ids=sequences[:, :PROMPT],
        prompt_mask=prompt_mask,
        responses=responses,
        completion_mask=torch.ones_like(responses, dtype=torch.bool),
        rewards=rewards,
        accuracy=torch.zeros(N),
        advantages=rewards - rewards.mean(),
        texts=[""] * N,
        examples=[],
    )


def brute_force_elbo(policy, rollout: Rollout, mask_id: int) -> torch.Tensor:
    """The continuous-time ELBO by enumeration: each mask S of k tokens has probability
    integral_0^1 t^(k-1) (1-t)^(L-k) dt = (k-1)! (L-k)! / L! under t ~ U(0,1) with weight 1/t."""
    length = rollout.response_length
    values = []
    for n in range(rollout.num_responses):
        ids = torch.cat([rollout.prompt_ids[n], rollout.responses[n]]).unsqueeze(0)
        keep = torch.cat([rollout.prompt_mask[n], torch.ones(length, dtype=torch.long)])
        total = 0.0
        for k in range(1, length + 1):
            probability = (
                math.factorial(k - 1) * math.factorial(length - k) / math.factorial(length)
            )
            for subset in itertools.combinations(range(length), k):
                noisy = ids.clone()
                for i in subset:
                    noisy[0, PROMPT + i] = mask_id
                with torch.no_grad():
                    logits = policy(noisy, keep.unsqueeze(0))[0, PROMPT:]
                log_probs = logits.log_softmax(-1).gather(-1, rollout.responses[n, :, None])
                total += probability * sum(log_probs[i, 0].item() for i in subset) / length
        values.append(total)
    return torch.tensor(values, dtype=torch.float64)


def test_exact_elbo_equals_brute_force_for_three_tokens():
    policy = tiny_policy()
    rollout = toy_rollout(length=3)
    table = masked_log_prob_table(policy, rollout, policy.mask_token_id, chunk=5)
    assert table.shape == (N, 8) and torch.all(table[:, 0] == 0)
    expected = brute_force_elbo(policy, rollout, policy.mask_token_id)
    torch.testing.assert_close(exact_elbo(table), expected, rtol=1e-10, atol=1e-10)


def test_lookup_and_recorded_forwards_match_the_loops_own_forwards():
    torch.manual_seed(0)
    module = build_module(None, N, GROUP, tiny=TINY).double()
    short = toy_rollout(length=4, seed=1)
    table = masked_log_prob_table(module.policy, short, module.policy.mask_token_id)
    for name in ("stratified", "iid"):
        masks = build_estimator(name).draw(N, 4, 3, torch.Generator().manual_seed(2))
        expected = forward_estimate(module, short, masks)
        torch.testing.assert_close(lookup_estimate(table, masks), expected)

    # Ragged micro-batches (3 rows per forward for 8 responses): the recorder still pairs rows.
    module.micro_batch_size = 3
    rollout = toy_rollout(length=6, seed=3)
    settings = {"prompt_mask_prob": 0.15}
    with ForwardRecorder(module.policy, rollout, module.policy.mask_token_id) as recorder:
        module.policy_gradient(
            rollout, 2, generator((7,), module.device), "bgpo", None, None, "one_step", settings
        )
    masks = build_estimator("one_step", settings).draw(
        N, 6, 2, generator((7,), module.device), prompt_length=PROMPT
    )
    torch.testing.assert_close(recorder.estimate(masks), forward_estimate(module, rollout, masks))


def test_smoke_study_writes_rows_na_cells_and_names_the_lowest_variance(tmp_path):
    torch.manual_seed(0)
    module = build_module(None, N, GROUP, tiny=TINY)
    rollout, short = toy_rollout(length=6), toy_rollout(length=3, seed=1)
    batch = {"prompts": PROMPTS, "group_size": GROUP, "responses": N, "response_length": 6}
    batch.update(temperature=1.0, seed=0, mean_reward=0.5, tied_groups=0, nonzero_advantages=N)
    batch["distinct"] = N
    info = {
        "command": "pytest",
        "machine": {"cpu": "test", "cores": 1, "threads": 1},
        "torch": torch.__version__,
        "python": "3",
        "date": "today",
        "policy": {"description": "a random tiny model"},
        "main_batch": batch,
        "exact_batch": {**batch, "response_length": 3},
    }
    settings = StudySettings(budgets=(1, 2, 3), repeats=2, golden_budget=4, seed=0)
    doc, files = tmp_path / "estimators.md", tmp_path / "estimators"
    run_study(module, rollout, short, list(SPECS), settings, info, doc, files, time.perf_counter())

    with (files / "estimators.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["estimator"], int(r["budget"])) for r in rows] == [
        (spec.label, budget) for spec in SPECS for budget in (1, 2, 3)
    ]
    na = {(r["estimator"], int(r["budget"])) for r in rows if r["status"] == "n/a"}
    assert na == {
        ("complementary", 1),
        ("complementary", 3),
        ("sdmc2", 1),
        ("sdmc2", 3),
        ("sdmc3", 1),
        ("sdmc3", 2),
    }
    for row in rows:
        if row["status"] == "n/a":
            assert row["elbo_var"] == row["grad_cosine"] == "n/a" and row["note"]
        else:
            assert float(row["elbo_var"]) > 0 and -1 <= float(row["grad_cosine"]) <= 1

    text = doc.read_text()
    assert (files / "estimators.png").stat().st_size > 0
    assert json.loads((files / "run.json").read_text())["command"] == "pytest"
    for budget in (1, 2, 3):
        elbo = [r for r in rows if int(r["budget"]) == budget and r["status"] == "ok"]
        elbo = [r for r in elbo if r["estimator"] in ELBO_ESTIMATORS]
        lowest = min(elbo, key=lambda r: float(r["elbo_var"]))["estimator"]
        forwards = "forward" if budget == 1 else "forwards"
        assert f"With {budget} {forwards} per response: lowest ELBO variance {lowest} (" in text
    assert "| complementary | 1 | n/a | n/a | n/a | n/a | n/a |" in text


def test_hand_written_text_has_no_numbers():
    for text in (INTERPRETATION, CAVEATS):
        assert not re.search(r"\d", text.replace("d1", ""))  # d1 is a method's name
