"""CPU smoke test of the SDPA kernel diagnostic."""

import pytest

from experiments.gpu_benchmark import sdpa_graph


@pytest.mark.parametrize("attention", ["sdpa", "sdpa_bidirectional"])
def test_it_prints_each_case_and_the_model_forward_with_its_attention_ops(capsys, attention):
    sdpa_graph.main(["--model-attention", attention])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5  # four plain calls and the model forward, unpinned on a CPU
    assert all("aten ['aten." in line for line in lines)
    assert lines[-1].startswith(f"model forward 16x768 ({attention})")
