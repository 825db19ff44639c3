"""The torch.fx capture that :func:`nn_bridge.find_symmetries` falls back to.

Where ``torch.export`` fails, the model is traced with
``torch.fx.symbolic_trace`` and lowered to ATen ops. The fallback must find
the same spec as export on models both can capture, and a working spec on a
model that only the fallback captures.
"""

from __future__ import annotations

import nets
import pytest
import torch
from torch import nn

from nn_bridge import (
    CaptureError,
    apply_transform,
    check_function_preserved,
    find_symmetries,
)


class ClampsWeights(nn.Module):
    """Clamps a weight in place in ``forward``, which ``torch.export`` rejects."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 8)
        self.second = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.first.weight.data.clamp_(-10.0, 10.0)
        return self.second(torch.tanh(self.first(x)))


class DataDependent(nn.Module):
    """Branches on a tensor value: neither capture can handle it soundly."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.first(x))
        if hidden.sum() > 0:
            return hidden * 2.0
        return hidden


CASES = {
    "mlp_relu": (lambda: nets.mlp((5, 12, 9, 3), nn.ReLU), (4, 5)),
    "mlp_tanh": (lambda: nets.mlp((5, 12, 3), nn.Tanh), (4, 5)),
    "small_cnn": (lambda: nets.small_cnn(nn.GELU), nets.SMALL_CNN_INPUT_SHAPE),
    "resnet": (lambda: nets.resnet18_like(widths=(4, 8, 8, 8)), (2, 3, 16, 16)),
    "functional": (nets.functional_net, nets.FUNCTIONAL_NET_INPUT_SHAPE),
}


def _without_export(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise RuntimeError("export switched off for this test")

    monkeypatch.setattr(torch.export, "export", fail)


def _structure(spec) -> dict:
    layout = spec.to_json()
    layout.pop("capture")
    return layout


@pytest.mark.parametrize("name", sorted(CASES))
def test_fallback_matches_export(name, monkeypatch):
    build, shape = CASES[name]
    model = build().eval()
    inputs = nets.random_input(shape)
    exported = find_symmetries(model, inputs)
    _without_export(monkeypatch)
    traced = find_symmetries(model, inputs)
    assert exported.capture == "torch.export"
    assert traced.capture == "torch.fx"
    assert _structure(traced) == _structure(exported)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fallback_spec_preserves_function(name, monkeypatch):
    build, shape = CASES[name]
    model = build().eval().double()
    inputs = nets.random_input(shape, dtype=torch.float64)
    _without_export(monkeypatch)
    spec = find_symmetries(model, inputs)
    moved = apply_transform(model, spec, spec.sample(seed=3), example_inputs=inputs)
    report = check_function_preserved(model, moved, inputs, rtol=1e-9, atol=1e-12)
    assert report.ok, report.summary()


def test_export_failure_uses_fx(caplog):
    model = ClampsWeights().eval()
    inputs = nets.random_input((3, 4))
    with caplog.at_level("WARNING", logger="nn_bridge._discover"):
        spec = find_symmetries(model, inputs)
    assert spec.capture == "torch.fx"
    assert "captured it with torch.fx.symbolic_trace" in caplog.text
    assert [site.size for site in spec.sites] == [8]
    assert "sign flips" in spec.table()
    moved = apply_transform(model, spec, spec.sample(seed=1), example_inputs=inputs)
    assert check_function_preserved(model, moved, inputs).ok


def test_both_captures_fail_names_both():
    with pytest.raises(CaptureError) as caught:
        find_symmetries(DataDependent(), nets.random_input((3, 4)))
    message = str(caught.value)
    assert "torch.export could not capture DataDependent" in message
    assert "torch.fx fallback failed too" in message
