"""Intertwiner groups of elementwise activations, proved and certified.

For an activation ``sigma`` acting entrywise on ``R^n``, the intertwiner group
is every invertible ``A`` for which some ``B = phi(A)`` gives
``sigma(A x) = B sigma(x)`` for all ``x``. :func:`query` computes it for a
catalogue activation, an expression in ``x``, a sympy expression or PyTorch
code, with a proof where one is found and numeric evidence always;
:func:`write_certificate` and :func:`verify_certificate` write and re-check
the proof. :func:`discover` finds the group of any elementwise function from
its values alone, and :func:`lie_algebra_check` checks the continuous part
of a group independently.

Importing this package does not import torch.
"""

from ._activation import Activation
from ._affine import AffineQueryResult, query_affine
from ._affine_certificate import (
    AffineVerificationReport,
    verify_affine_certificate,
    write_affine_certificate,
)
from ._affine_group import AffineGroupDescription
from ._blackbox import discover, lie_algebra_check
from ._catalogue import (
    CATALOGUE,
    activation_from_aten,
    activation_from_torch_module,
    get_activation,
)
from ._certificate import (
    AFFINE_SCHEMA,
    SCHEMA,
    VerificationReport,
    certificate_of,
    load_certificate,
    verify_certificate,
    write_certificate,
)
from ._errors import (
    CertificateError,
    DegenerateActivationError,
    ExpressionError,
    NotInGroupError,
    ParameterError,
    SymgroupsError,
    UnknownActivationError,
    VerificationError,
)
from ._group import Character, GroupDescription, IntertwinerGroup
from ._layers import (
    LAYER_NAMES,
    LayerElement,
    LayerGroup,
    layer_group,
    random_orthogonal,
)
from ._parse import check_expression, parse_expression
from ._query import QueryResult, query, resolve_activation
from ._symbols import X
from ._version import __version__

__all__ = [
    "AFFINE_SCHEMA",
    "AffineGroupDescription",
    "AffineQueryResult",
    "AffineVerificationReport",
    "CATALOGUE",
    "SCHEMA",
    "Activation",
    "CertificateError",
    "Character",
    "DegenerateActivationError",
    "ExpressionError",
    "GroupDescription",
    "IntertwinerGroup",
    "LAYER_NAMES",
    "LayerElement",
    "LayerGroup",
    "NotInGroupError",
    "ParameterError",
    "QueryResult",
    "SymgroupsError",
    "UnknownActivationError",
    "VerificationError",
    "VerificationReport",
    "X",
    "__version__",
    "activation_from_aten",
    "activation_from_torch_module",
    "certificate_of",
    "check_expression",
    "discover",
    "get_activation",
    "intertwiner_group",
    "layer_group",
    "lie_algebra_check",
    "load_certificate",
    "parse_expression",
    "query",
    "query_affine",
    "random_orthogonal",
    "resolve_activation",
    "verify_affine_certificate",
    "verify_certificate",
    "write_affine_certificate",
    "write_certificate",
]


def intertwiner_group(spec, n: int, params=None) -> IntertwinerGroup:
    """Return the intertwiner group of ``spec`` acting on ``R^n``.

    A shortcut for ``query(spec, params).matrix_group(n)``; raises
    :class:`SymgroupsError` when the group is undecided.
    """
    return query(spec, params).matrix_group(n)
