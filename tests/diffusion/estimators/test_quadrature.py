import math

import pytest
import torch

from bgpo_lightning.diffusion.estimators.quadrature import gauss_legendre, simpson
from bgpo_lightning.errors import ConfigError

F64 = torch.float64
CLOSED_FORMS = {  # DESIGN.md section 1 (GDPO)
    1: ([0.5], [1.0]),
    2: ([0.5 - 1 / (2 * math.sqrt(3)), 0.5 + 1 / (2 * math.sqrt(3))], [0.5, 0.5]),
    3: (
        [0.5 - math.sqrt(3 / 5) / 2, 0.5, 0.5 + math.sqrt(3 / 5) / 2],
        [5 / 18, 8 / 18, 5 / 18],
    ),
}


@pytest.mark.parametrize("nodes", [1, 2, 3])
def test_gauss_legendre_matches_the_closed_forms(nodes):
    t, w = gauss_legendre(nodes)
    assert t.dtype == F64 and w.dtype == F64
    expected_t, expected_w = CLOSED_FORMS[nodes]
    torch.testing.assert_close(t, torch.tensor(expected_t, dtype=F64), rtol=0, atol=1e-15)
    torch.testing.assert_close(w, torch.tensor(expected_w, dtype=F64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("nodes", [1, 2, 3, 4, 5])
def test_gauss_legendre_is_exact_to_degree_2n_minus_1(nodes):
    t, w = gauss_legendre(nodes)
    assert abs(w.sum().item() - 1) < 1e-14
    for degree in range(2 * nodes):
        assert abs((w * t**degree).sum().item() - 1 / (degree + 1)) < 1e-14
    degree = 2 * nodes  # one more is no longer exact
    assert abs((w * t**degree).sum().item() - 1 / (degree + 1)) > 1e-6


@pytest.mark.parametrize("nodes", [3, 5, 7])
def test_simpson_nodes_weights_and_exact_cubics(nodes):
    t, w = simpson(nodes)
    h = 1 / (nodes - 1)
    torch.testing.assert_close(t, torch.linspace(0, 1, nodes, dtype=F64))
    pattern = [1.0] + [4.0 if i % 2 else 2.0 for i in range(1, nodes - 1)] + [1.0]
    torch.testing.assert_close(w, torch.tensor(pattern, dtype=F64) * h / 3)
    for degree in range(4):
        assert abs((w * t**degree).sum().item() - 1 / (degree + 1)) < 1e-14
    assert abs((w * t**4).sum().item() - 1 / 5) > 1e-6


@pytest.mark.parametrize("nodes", [0, 6])
def test_gauss_legendre_node_count_is_checked(nodes):
    with pytest.raises(ConfigError, match=f"^gauss_legendre needs 1 to 5 nodes, got {nodes}$"):
        gauss_legendre(nodes)


@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_simpson_node_count_is_checked(nodes):
    with pytest.raises(
        ConfigError, match=f"^simpson needs an odd number of nodes >= 3, got {nodes}$"
    ):
        simpson(nodes)
