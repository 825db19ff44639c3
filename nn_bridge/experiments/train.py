"""Seeded, single-threaded training of the experiment models on the digits split."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._errors import InvalidArgumentError
from .data import DigitsSplit, load_digits_split
from .models import build_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`train_model` (Adam on cross-entropy, mini-batches)."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(
                    f"invalid {name} {value!r}: expected a positive integer"
                )
        if not self.learning_rate > 0:
            raise InvalidArgumentError(
                f"invalid learning_rate {self.learning_rate!r}: expected a "
                "positive number"
            )


@dataclass(frozen=True)
class TrainedModel:
    """A trained model's identity, weights (numpy arrays) and accuracies."""

    family: str
    activation: str
    seed: int
    state: dict[str, np.ndarray]
    train_accuracy: float
    test_accuracy: float

    def build(self) -> nn.Sequential:
        """Build the model and load the stored weights into it (eval mode)."""
        model = build_model(self.family, self.activation)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in self.state.items()})
        model.eval()
        return model


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch and the BLAS under numpy on one thread inside the block.

    One thread makes float results identical whether a task runs in this
    process, in a joblib worker or on a Dask worker. It also keeps OpenBLAS
    threads from competing with torch's OpenMP threads, which wait busily after
    each operation and made small numpy products a thousand times slower on a
    2-core machine. The previous thread counts are restored on exit.
    """
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Return the fraction of ``x`` that ``model`` classifies as ``y``."""
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    return float((predicted == y).float().mean().item())


def train_model(
    family: str,
    activation: str,
    seed: int,
    config: TrainConfig | None = None,
    data: DigitsSplit | None = None,
) -> TrainedModel:
    """Train one model from ``seed``; the same arguments give the same weights.

    ``seed`` sets both the initial weights and the order of the mini-batches.
    Training runs on one CPU thread (see :func:`single_thread`).
    """
    config = config or TrainConfig()
    data = data or load_digits_split()
    with single_thread():
        torch.manual_seed(seed)
        model = build_model(family, activation)
        optimizer = torch.optim.Adam(
            model.parameters(),
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
        )
        generator = torch.Generator().manual_seed(seed)
        n = data.x_train.shape[0]
        loss_function = nn.CrossEntropyLoss()
        model.train()
        for _ in range(config.epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, config.batch_size):
                batch = order[start : start + config.batch_size]
                optimizer.zero_grad()
                loss = loss_function(model(data.x_train[batch]), data.y_train[batch])
                loss.backward()
                optimizer.step()
        model.eval()
        train_accuracy = accuracy(model, data.x_train, data.y_train)
        test_accuracy = accuracy(model, data.x_test, data.y_test)
    logger.info(
        "trained %s/%s seed %d: test accuracy %.4f",
        family,
        activation,
        seed,
        test_accuracy,
    )
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return TrainedModel(
        family=family,
        activation=activation,
        seed=seed,
        state=state,
        train_accuracy=train_accuracy,
        test_accuracy=test_accuracy,
    )
