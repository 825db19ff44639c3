"""Elementwise ``torch.nn.Module`` classes for catalogue entries that torch lacks.

torch 2.13 has ``abs``, ``sin``, ``cos``, ``atan``, ``exp`` and ``pow`` only as
functions, and no Gaussian at all. These modules wrap those functions so that
every catalogue entry has a module to compare against and to place in a model.
This module imports torch at import time, so :mod:`symgroups._catalogue` imports
it only inside the functions that need torch.
"""

from __future__ import annotations

import torch
from torch import nn

from ._errors import ParameterError

__all__ = ["Abs", "Atan", "Cos", "Exp", "Gaussian", "Power", "Sin"]


class Abs(nn.Module):
    """``|x|`` elementwise, computed by :func:`torch.abs`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)


class Sin(nn.Module):
    """``sin(x)`` elementwise, computed by :func:`torch.sin`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


class Cos(nn.Module):
    """``cos(x)`` elementwise, computed by :func:`torch.cos`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cos(x)


class Atan(nn.Module):
    """``atan(x)`` elementwise, computed by :func:`torch.atan`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.atan(x)


class Exp(nn.Module):
    """``exp(x)`` elementwise, computed by :func:`torch.exp`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


class Gaussian(nn.Module):
    """``exp(-x**2)`` elementwise, without a scale or a normalising factor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.square(x))


class Power(nn.Module):
    """``x**exponent`` elementwise for an integer exponent ``>= 1``.

    An integer exponent keeps the function real and defined on all of R,
    which a fractional one would not for negative ``x``.

    Raises
    ------
    ParameterError
        If ``exponent`` is not an ``int`` (``bool`` excluded) of at least 1.
    """

    def __init__(self, exponent: int = 2) -> None:
        super().__init__()
        is_int = isinstance(exponent, int) and not isinstance(exponent, bool)
        if not is_int or exponent < 1:
            raise ParameterError(
                f"invalid exponent {exponent!r} for Power: expected an int >= 1"
            )
        self.exponent = exponent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.pow(x, self.exponent)

    def extra_repr(self) -> str:
        return f"exponent={self.exponent}"
