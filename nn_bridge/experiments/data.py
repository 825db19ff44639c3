"""The scikit-learn digits data set with one fixed train/test split.

``sklearn.datasets.load_digits`` reads 1797 images of 8x8 pixels (values 0 to
16, ten classes) from files inside the scikit-learn package, so nothing is
downloaded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

#: Fraction of the 1797 images held out for testing.
TEST_FRACTION = 0.25

#: Seed of the stratified split; every experiment uses this one split.
SPLIT_SEED = 0

#: Largest pixel value of the digits images; inputs are divided by it.
PIXEL_MAX = 16.0


@dataclass(frozen=True)
class DigitsSplit:
    """Inputs (float32, shape ``(n, 64)``, in [0, 1]) and labels (int64) of a split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n_classes(self) -> int:
        """Number of classes, counted on the training labels."""
        return int(self.y_train.max().item()) + 1


@functools.lru_cache(maxsize=1)
def _split_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / PIXEL_MAX).astype(np.float32)
    y = digits.target.astype(np.int64)
    return tuple(
        train_test_split(
            x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
        )
    )


def load_digits_split() -> DigitsSplit:
    """Load the digits data set, split into train and test sets the same way each call.

    The split is stratified by class with seed :data:`SPLIT_SEED`. The
    tensors are fresh copies, so callers may modify them.
    """
    x_train, x_test, y_train, y_test = _split_arrays()
    return DigitsSplit(
        x_train=torch.tensor(x_train),
        y_train=torch.tensor(y_train),
        x_test=torch.tensor(x_test),
        y_test=torch.tensor(y_test),
    )
