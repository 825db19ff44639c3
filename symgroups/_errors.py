"""The exception hierarchy shared by ``symgroups`` and ``nn_bridge``."""

from __future__ import annotations

from typing import Any


class SymgroupsError(ValueError):
    """Root of every error raised on purpose by this toolkit.

    It subclasses :class:`ValueError` because almost every failure is a bad
    value (an expression, a parameter, a file). ``evidence`` carries the
    object that shows the failure, such as a witness point or a matrix.
    """

    def __init__(self, message: str, *, evidence: Any = None) -> None:
        super().__init__(message)
        self.evidence = evidence


class ExpressionError(SymgroupsError):
    """An activation expression is malformed, unsafe or not supported."""


class ParameterError(SymgroupsError):
    """A catalogue parameter or a dimension is invalid."""


class UnknownActivationError(SymgroupsError):
    """A name is neither in the catalogue nor an expression."""


class DegenerateActivationError(SymgroupsError):
    """The activation is constant, so no intertwiner map is defined."""


class CertificateError(SymgroupsError):
    """A certificate file is unreadable or does not follow the schema."""


class VerificationError(SymgroupsError):
    """A certificate is well formed but one of its claims is false.

    ``step`` is the index of the failing step in ``steps``, or ``None`` when
    the failure is in how the steps combine into the stated group.
    """

    def __init__(
        self, message: str, *, step: int | None = None, evidence: Any = None
    ) -> None:
        super().__init__(message, evidence=evidence)
        self.step = step


class NotInGroupError(SymgroupsError):
    """A matrix is not an element of the intertwiner group it was used with."""
