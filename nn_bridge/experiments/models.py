"""The model families of the experiments: an MLP and a small CNN for 8x8 digits.

Both take inputs of shape ``(n, 64)`` and return logits of shape ``(n, 10)``.
Each hidden activation is its own module, named ``act1`` and ``act2``, so a
hidden layer is named by its module path and its group is read from the
module by ``symgroups``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from .._errors import InvalidArgumentError

#: Activation names accepted by :func:`build_model`, with their module factories.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

#: Model families accepted by :func:`build_model`.
FAMILIES = ("mlp", "cnn")

#: Width of both hidden layers of the MLP (64 -> h -> h -> 10).
MLP_HIDDEN = 32

#: Channels of the two 3x3 convolutions of the CNN.
CNN_CHANNELS = (8, 16)

#: Input side length and number of classes of the digits images.
IMAGE_SIDE = 8
N_CLASSES = 10


def _check_choice(name: str, value: str, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise InvalidArgumentError(
            f"invalid {name} {value!r}: expected one of {', '.join(accepted)}"
        )


def build_model(family: str, activation: str) -> nn.Sequential:
    """Build an untrained model of ``family`` with ``activation`` at both hidden layers.

    ``mlp`` is ``fc1 -> act1 -> fc2 -> act2 -> head`` with
    :data:`MLP_HIDDEN` units per hidden layer. ``cnn`` is ``unflatten ->
    conv1 -> act1 -> conv2 -> act2 -> pool -> flatten -> head``, two 3x3
    convolutions with padding 1 and :data:`CNN_CHANNELS` channels, a 2x2
    average pool and a linear head. The weights come from torch's default
    initialisation, so seed torch first for a reproducible model.

    Raises
    ------
    InvalidArgumentError
        If ``family`` is not in :data:`FAMILIES` or ``activation`` is not a
        key of :data:`ACTIVATIONS`.
    """
    _check_choice("family", family, FAMILIES)
    _check_choice("activation", activation, tuple(ACTIVATIONS))
    make_activation = ACTIVATIONS[activation]
    if family == "mlp":
        layers = [
            ("fc1", nn.Linear(IMAGE_SIDE * IMAGE_SIDE, MLP_HIDDEN)),
            ("act1", make_activation()),
            ("fc2", nn.Linear(MLP_HIDDEN, MLP_HIDDEN)),
            ("act2", make_activation()),
            ("head", nn.Linear(MLP_HIDDEN, N_CLASSES)),
        ]
    else:
        first, second = CNN_CHANNELS
        pooled_side = IMAGE_SIDE // 2
        layers = [
            ("unflatten", nn.Unflatten(1, (1, IMAGE_SIDE, IMAGE_SIDE))),
            ("conv1", nn.Conv2d(1, first, kernel_size=3, padding=1)),
            ("act1", make_activation()),
            ("conv2", nn.Conv2d(first, second, kernel_size=3, padding=1)),
            ("act2", make_activation()),
            ("pool", nn.AvgPool2d(2)),
            ("flatten", nn.Flatten()),
            ("head", nn.Linear(second * pooled_side * pooled_side, N_CLASSES)),
        ]
    return nn.Sequential(OrderedDict(layers))


def hidden_layers(family: str) -> tuple[str, ...]:
    """Return the module paths of the hidden activations of ``family``, input first."""
    _check_choice("family", family, FAMILIES)
    return ("act1", "act2")
