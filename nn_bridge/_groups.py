"""Intertwiner groups of the activations found in a graph, from ``symgroups``.

A resolver maps one elementwise op (its ATen name and its arguments after the
input tensor) to an :class:`ActivationGroup`, or to None when the op is not
an activation of the catalogue; the analysis then allows permutations only,
which every elementwise function admits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ._scalars import IDENTITY, TRIVIAL, Char, ScalarGroup

logger = logging.getLogger(__name__)

#: Kinds of :class:`ActivationGroup`: a monomial group with scalars and a
#: character, the identity map (every invertible matrix), or permutations only.
GROUP_KINDS = ("monomial", "general_linear", "permutation")


@dataclass(frozen=True)
class ActivationGroup:
    """The group an activation allows on the units it acts on.

    For ``kind == "monomial"``: ``sigma(d z) = mu(d) sigma(z)`` for every
    ``d`` in ``scalars``. ``label`` names the activation and ``status`` is
    the ``symgroups.query`` status (``proved``, ``numerically_verified``,
    ``undecided``) or ``given`` for a group supplied by the caller.
    """

    label: str
    status: str
    kind: str
    scalars: ScalarGroup
    mu: Char
    note: str = ""

    def describe(self) -> str:
        if self.kind == "general_linear":
            group = "linear, every invertible matrix"
        elif self.kind == "permutation":
            group = "permutations only"
        else:
            group = f"{self.scalars.describe()}, mu(d) = {self.mu.describe()}"
        text = f"{self.label} ({self.status}): {group}"
        return f"{text}; {self.note}" if self.note else text


Resolver = Callable[[str, tuple, dict], "ActivationGroup | None"]


def _power(value: Any) -> Fraction:
    try:
        return Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return Fraction(float(value)).limit_denominator(10**6)


def group_from_description(
    label: str, description: Any, status: str = "given"
) -> ActivationGroup:
    """Convert a :class:`symgroups._group.GroupDescription` to an ActivationGroup.

    ``affine_stabilizer`` (an affine activation) and ``degenerate`` (a
    constant) become permutations only: a permutation fixes the all-ones
    vector, and a constant's output does not depend on its input at all.
    """
    if description is None:
        return ActivationGroup(
            label,
            status,
            "permutation",
            ScalarGroup("trivial"),
            TRIVIAL,
            "undecided, so permutations only",
        )
    if description.kind == "general_linear":
        return ActivationGroup(
            label, status, "general_linear", ScalarGroup("nonzero"), IDENTITY
        )
    if description.kind != "monomial":
        return ActivationGroup(
            label,
            status,
            "permutation",
            ScalarGroup("trivial"),
            TRIVIAL,
            f"{description.kind} group, so permutations only",
        )
    scalars = ScalarGroup(
        description.scalars, tuple(float(g) for g in description.generators)
    )
    character = description.character
    mu = Char(character.sign_exponent, _power(character.power))
    return ActivationGroup(label, status, "monomial", scalars, mu)


class SymgroupsResolver:
    """The default resolver: ``symgroups.activation_from_aten`` + ``symgroups.query``.

    Results are cached per activation, so each distinct activation is
    queried once per resolver.
    """

    def __init__(self) -> None:
        self._cache: dict[str, ActivationGroup | None] = {}

    def __call__(
        self, op_name: str, args: tuple, kwargs: dict
    ) -> ActivationGroup | None:
        try:
            import symgroups
        except ImportError as error:
            logger.warning("symgroups is not importable (%s); permutations only", error)
            return None
        try:
            activation = symgroups.activation_from_aten(op_name, args, kwargs)
        except symgroups.SymgroupsError as error:
            logger.info("%s is not a catalogue activation: %s", op_name, error)
            return None
        if activation is None:
            return None
        key = activation.cache_key()
        if key not in self._cache:
            try:
                result = symgroups.query(activation)
            except symgroups.SymgroupsError as error:
                logger.warning("symgroups.query(%s) failed: %s", key, error)
                self._cache[key] = group_from_description(key, None, "undecided")
            else:
                self._cache[key] = group_from_description(
                    key, result.group, result.status
                )
            logger.debug("group of %s: %s", key, self._cache[key].describe())
        return self._cache[key]


def fixed_group_resolver(groups: Mapping[str, Any]) -> Resolver:
    """Build a resolver from ``{ATen op name: GroupDescription}``.

    Op names are compared without the in-place underscore
    (``aten.relu_.default`` matches ``aten.relu.default``). Ops not in
    ``groups`` get None, so the analysis allows permutations only. Useful to
    test with known groups or to override the catalogue.
    """
    table = {
        name: group_from_description(name, description)
        for name, description in groups.items()
    }

    def resolve(op_name: str, args: tuple, kwargs: dict) -> ActivationGroup | None:
        namespace, _, rest = op_name.partition(".")
        base, _, overload = rest.partition(".")
        return table.get(op_name) or table.get(
            f"{namespace}.{base.rstrip('_')}.{overload}"
        )

    return resolve
