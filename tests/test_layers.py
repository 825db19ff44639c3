"""Symmetry groups of non-elementwise layers: the law f(A x) = B f(x) and its limits.

Random elements of each group satisfy the law in float64; matrices just outside
each group break it for every B (the best least-squares B still fails), and the
membership test rejects them. The numpy reference layers are checked against
torch's own implementations.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgroups import LAYER_NAMES, ParameterError, layer_group, random_orthogonal
from symgroups.cli import main

#: Relative tolerance of the float64 law for group elements.
LAW_RTOL = 1e-10

#: A matrix outside the group must break the law by more than this, for the
#: best B.
MISS_MIN_DEVIATION = 1e-4

PROPERTY_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

POOLS = ("maxpool", "avgpool")


def probe(rng, group, n, count=40):
    """Inputs of the layer: columns of R^d, or (channels, length) for pooling."""
    if group.name in POOLS:
        return rng.normal(size=(n, 12)) * 3.0
    scales = rng.choice([0.1, 1.0, 5.0], size=(1, count))
    return rng.normal(size=(group.input_dim(n), count)) * scales


def law_deviation(group, A, B, x):
    left = group.apply(A @ x)
    right = B @ group.apply(x)
    return float(np.abs(left - right).max() / max(np.abs(left).max(), 1e-300))


def best_fit_deviation(group, A, x):
    """Deviation of f(A x) = B f(x) for the least-squares best B.

    If even the best B leaves this residual, no B satisfies the law.
    """
    F = group.apply(x).reshape(group.apply(x).shape[0], -1)
    G = group.apply(A @ x).reshape(F.shape[0], -1)
    B, *_ = np.linalg.lstsq(F.T, G.T, rcond=None)
    residual = G - B.T @ F
    return float(np.abs(residual).max() / np.abs(G).max())


@functools.cache
def group_of(name, **params):
    # GLU groups query their gate once; a cache keeps hypothesis runs short.
    return layer_group(name, **params)


@pytest.mark.parametrize("name", LAYER_NAMES)
@PROPERTY_SETTINGS
@given(n=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_sampled_elements_satisfy_law(name, n, seed):
    group = group_of(name)
    element = group.sample(n, seed)
    x = probe(np.random.default_rng(seed), group, n)
    assert law_deviation(group, element.A, element.B, x) <= LAW_RTOL
    assert group.contains(element.A)
    assert group.contains(element.A, element.B)
    assert np.allclose(group.phi(element.A), element.B, atol=1e-12)


@pytest.mark.parametrize("eps", [1e-6, 0.5])
@pytest.mark.parametrize("name", ["rmsnorm", "layernorm"])
@PROPERTY_SETTINGS
@given(n=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_norms_with_eps_satisfy_law(name, eps, n, seed):
    group = group_of(name, eps=eps)
    element = group.sample(n, seed)
    x = probe(np.random.default_rng(seed), group, n)
    assert law_deviation(group, element.A, element.B, x) <= LAW_RTOL
    assert group.contains(element.A, element.B)


@PROPERTY_SETTINGS
@given(n=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_rmsnorm_rejects_non_orthogonal(n, seed):
    group = group_of("rmsnorm")
    rng = np.random.default_rng(seed)
    Q = random_orthogonal(n, rng)
    stretch = np.ones(n)
    stretch[0] = 1.5
    A = Q @ np.diag(stretch)
    assert not group.contains(A)
    assert best_fit_deviation(group, A, probe(rng, group, n)) > MISS_MIN_DEVIATION


def test_rmsnorm_with_eps_rejects_scaling():
    group = group_of("rmsnorm", eps=0.5)
    Q = random_orthogonal(4, 0)
    assert group_of("rmsnorm").contains(2.0 * Q, Q)
    assert not group.contains(2.0 * Q)
    x = probe(np.random.default_rng(0), group, 4)
    assert best_fit_deviation(group, 2.0 * Q, x) > MISS_MIN_DEVIATION


@PROPERTY_SETTINGS
@given(n=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_layernorm_rejects_orthogonal_moving_ones(n, seed):
    group = group_of("layernorm")
    rng = np.random.default_rng(seed)
    # The quarter turn in the (e_1, e_2) plane maps 1 to (-1, 1, 1, ...).
    quarter_turn = np.eye(n)
    quarter_turn[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]
    Q = random_orthogonal(n, rng, fix_ones=True) @ quarter_turn
    assert np.allclose(Q.T @ Q, np.eye(n))
    assert not group.contains(Q)
    assert best_fit_deviation(group, Q, probe(rng, group, n)) > MISS_MIN_DEVIATION


def test_layernorm_fixing_ones_commutes():
    Q = random_orthogonal(5, 3, fix_ones=True)
    assert np.allclose(Q @ np.ones(5), np.ones(5))
    assert np.allclose(Q.T @ np.ones(5), np.ones(5))
    assert np.allclose(Q.T @ Q, np.eye(5))
    assert group_of("layernorm", eps=1e-5).contains(Q, Q)


def test_layernorm_b_is_free_along_ones():
    group = group_of("layernorm")
    Q = random_orthogonal(4, 1, fix_ones=True)
    ones = np.ones(4)
    B = Q + np.outer(ones, ones) * 0.7
    assert group.contains(Q, B)
    x = probe(np.random.default_rng(1), group, 4)
    assert law_deviation(group, Q, B, x) <= LAW_RTOL
    assert not group.contains(Q, Q @ np.diag([1.0, 1.0, 1.0, 1.2]))


@PROPERTY_SETTINGS
@given(n=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_softmax_rejects_rotation(n, seed):
    group = group_of("softmax")
    rng = np.random.default_rng(seed)
    Q = random_orthogonal(n, rng)
    assert not group.contains(Q)
    assert best_fit_deviation(group, Q, probe(rng, group, n)) > MISS_MIN_DEVIATION


def test_softmax_rejects_scaled_permutation():
    group = group_of("softmax")
    A = 2.0 * np.eye(3)[:, [2, 0, 1]]
    assert not group.contains(A)
    x = probe(np.random.default_rng(0), group, 3)
    assert best_fit_deviation(group, A, x) > MISS_MIN_DEVIATION


def glu_element(perm_gate, perm_lin, d_gate, d_lin):
    m = len(perm_gate)
    A = np.zeros((2 * m, 2 * m))
    A[np.asarray(perm_gate), np.arange(m)] = d_gate
    A[m + np.asarray(perm_lin), m + np.arange(m)] = d_lin
    return A


@pytest.mark.parametrize("name", ["glu", "swiglu", "geglu", "reglu"])
def test_glu_rejects_unpaired_permutations(name):
    group = group_of(name)
    A = glu_element([0, 1, 2], [1, 0, 2], np.ones(3), np.ones(3))
    assert not group.contains(A)
    x = probe(np.random.default_rng(0), group, 3)
    assert best_fit_deviation(group, A, x) > MISS_MIN_DEVIATION


@pytest.mark.parametrize("name", ["glu", "swiglu", "geglu"])
def test_glu_gate_without_scalings_rejects_them(name):
    group = group_of(name)
    A = glu_element([2, 0, 1], [2, 0, 1], [2.0, 1.0, 1.0], [1.0, -3.0, 0.5])
    assert not group.contains(A)
    x = probe(np.random.default_rng(0), group, 3)
    assert best_fit_deviation(group, A, x) > MISS_MIN_DEVIATION


def test_reglu_accepts_positive_gate_scaling():
    group = group_of("reglu")
    A = glu_element([2, 0, 1], [2, 0, 1], [2.0, 0.5, 3.0], [1.0, -3.0, 0.5])
    B = np.zeros((3, 3))
    B[[2, 0, 1], [0, 1, 2]] = [2.0, -1.5, 1.5]
    assert group.contains(A, B)
    x = probe(np.random.default_rng(0), group, 3)
    assert law_deviation(group, A, B, x) <= LAW_RTOL
    negative = glu_element([0, 1, 2], [0, 1, 2], [-1.0, 1.0, 1.0], np.ones(3))
    assert not group.contains(negative)


def test_glu_with_tanh_gate_allows_sign_flips():
    group = group_of("glu", gate="tanh")
    A = glu_element([1, 0], [1, 0], [-1.0, 1.0], [2.0, 1.0])
    B = np.zeros((2, 2))
    B[[1, 0], [0, 1]] = [-2.0, 1.0]
    assert group.status == "proved"
    assert group.contains(A, B)
    x = probe(np.random.default_rng(0), group, 2)
    assert law_deviation(group, A, B, x) <= LAW_RTOL


def test_glu_rejects_mixed_branches():
    group = group_of("swiglu")
    A = np.eye(4)
    A[0, 2] = 0.5
    assert not group.contains(A)


@pytest.mark.parametrize("A", [np.diag([1.0, -1.0]), np.array([[1.0, 1.0], [0, 1]])])
def test_maxpool_rejects_negative_or_mixing(A):
    group = group_of("maxpool")
    assert not group.contains(A)
    x = probe(np.random.default_rng(0), group, 2)
    assert best_fit_deviation(group, A, x) > MISS_MIN_DEVIATION


def test_maxpool_with_window_one_is_general_linear():
    group = group_of("maxpool", kernel_size=1)
    A = np.array([[1.0, 2.0], [-1.0, 0.5]])
    assert group.contains(A, A)
    x = probe(np.random.default_rng(0), group, 2)
    assert law_deviation(group, A, A, x) <= LAW_RTOL


def test_avgpool_accepts_mixing_rejects_singular():
    group = group_of("avgpool", kernel_size=3, stride=2)
    A = np.array([[1.0, 2.0], [-1.0, 0.5]])
    assert group.contains(A, A)
    x = probe(np.random.default_rng(0), group, 2)
    assert law_deviation(group, A, A, x) <= LAW_RTOL
    assert not group.contains(np.array([[1.0, 2.0], [2.0, 4.0]]))
    assert not group.contains(A, 2.0 * A)


def test_rmsnorm_phi_is_homomorphism():
    group = group_of("rmsnorm")
    first, second = group.sample(4, 1), group.sample(4, 2)
    product = group.phi(first.A @ second.A)
    assert np.allclose(product, first.B @ second.B, atol=1e-12)


def test_reference_layers_match_torch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5))
    t = torch.from_numpy(x.T.copy())
    rms = torch.nn.functional.rms_norm(t, (6,), eps=1e-5).numpy().T
    assert np.allclose(group_of("rmsnorm", eps=1e-5).apply(x), rms, atol=1e-12)
    ln = torch.nn.functional.layer_norm(t, (6,), eps=1e-5).numpy().T
    assert np.allclose(group_of("layernorm", eps=1e-5).apply(x), ln, atol=1e-12)
    soft = torch.softmax(t, dim=1).numpy().T
    assert np.allclose(group_of("softmax").apply(x), soft, atol=1e-15)
    # torch's glu puts the linear half first and the sigmoid gate second.
    glu = torch.nn.functional.glu(torch.cat([t[:, 3:], t[:, :3]], dim=1), dim=1)
    assert np.allclose(group_of("glu").apply(x), glu.numpy().T, atol=1e-15)
    swiglu = (torch.nn.functional.silu(t[:, :3]) * t[:, 3:]).numpy().T
    assert np.allclose(group_of("swiglu").apply(x), swiglu, atol=1e-15)
    signal = rng.normal(size=(3, 11))
    pooled = torch.nn.functional.max_pool1d(torch.from_numpy(signal), 3, 2).numpy()
    maxpool = group_of("maxpool", kernel_size=3, stride=2).apply(signal)
    assert np.array_equal(maxpool, pooled)
    averaged = torch.nn.functional.avg_pool1d(torch.from_numpy(signal), 3, 2).numpy()
    avgpool = group_of("avgpool", kernel_size=3, stride=2).apply(signal)
    assert np.allclose(avgpool, averaged, atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "batchnorm"}, r"unknown layer 'batchnorm'"),
        ({"name": "softmax", "gate": "tanh"}, r"gate applies only to the GLU"),
        ({"name": "rmsnorm", "eps": -1.0}, r"eps must be a finite number >= 0"),
        ({"name": "maxpool", "kernel_size": 0}, r"kernel_size must be a positive"),
    ],
)
def test_layer_group_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        layer_group(**kwargs)


def test_sample_rejects_small_dimension():
    with pytest.raises(ParameterError, match=r"dimension must be an integer >= 2"):
        group_of("softmax").sample(1)


def test_cli_layer_json_example_satisfies_law(capsys):
    assert main(["layer", "layernorm", "--dim", "4", "--eps", "1e-5", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["name"] == "layernorm"
    assert payload["status"] == "proved"
    assert payload["docs"] == "layers.md#layernorm"
    A, B = np.array(payload["example"]["A"]), np.array(payload["example"]["B"])
    group = group_of("layernorm", eps=1e-5)
    assert law_deviation(group, A, B, probe(np.random.default_rng(0), group, 4)) < 1e-9


def test_cli_layer_text(capsys):
    assert main(["layer", "reglu", "--dim", "2"]) == 0
    out = capsys.readouterr().out
    assert "positively scaled permutation matrices" in out
    assert "example A:" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["layer", "batchnorm"], "invalid choice: 'batchnorm'"),
        (["layer", "softmax", "--dim", "1"], "dimension must be an integer >= 2"),
        (["layer", "rmsnorm", "--eps=-1"], "invalid eps '-1'"),
        (["layer", "glu", "--gate", "y+x"], "unknown name 'y'"),
    ],
)
def test_cli_layer_bad_input_exits_2(argv, message, capsys):
    # argparse reports its own errors by raising SystemExit.
    try:
        code = main(argv)
    except SystemExit as exit_status:
        code = exit_status.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_glu_affine_gate_rejected():
    # With g(t) = t, swapping the two branches preserves x * y, which the
    # block-diagonal group would miss, so the group is not claimed.
    with pytest.raises(ParameterError, match="bilinear"):
        layer_group("glu", gate="x")
