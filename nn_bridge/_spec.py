"""The symmetry spec: hidden-unit sites, their groups and the tensors they act on.

A site is a set of hidden units that a group element moves together. For a
unit site of size ``n`` the element is ``A = P diag(d)`` (``kind ==
"monomial"``, with one scale vector ``d`` per component) or a dense matrix
(``kind == "general_linear"``); for an attention site it permutes ``heads``
and applies one ``qk_dim x qk_dim`` matrix ``M_h`` and one ``vo_dim x vo_dim``
matrix ``N_h`` per head.

Each :class:`Action` says how the element changes one tensor along one axis.
``side == "out"`` replaces the slice ``T[positions]`` by ``R @ T[positions]``
(a producer: weight rows, a bias, BatchNorm statistics), ``side == "in"`` by
``T[positions] @ R^-1`` (a consumer: weight columns). ``positions[i, r]`` is
the index along ``axis`` of replica ``r`` of the site's row ``i``; a row has
several replicas when a flatten turns a channel into a block of features.
For a monomial site, ``R = P diag(s)`` with ``s = prod chi_c(d_c)`` over the
action's ``factors`` ``(component, chi)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import SpecError
from ._scalars import Char, ScalarGroup

logger = logging.getLogger(__name__)

SITE_KINDS = ("monomial", "general_linear", "attention")
SIDES = ("out", "in")
FIBRES = ("q", "k", "v")
BLOCK_GROUPS = ("general_linear", "identity")

#: Version of the JSON layout written by :meth:`SymmetrySpec.to_json`.
SPEC_FORMAT = 1


@dataclass(frozen=True)
class Action:
    """How a site's element changes ``tensor`` along ``axis``.

    ``positions`` is an int64 array ``(rows, replicas)``. ``factors`` (unit
    sites) lists ``(component index, character)`` pairs; ``fibre`` (attention
    sites) is ``"q"`` (rows move with ``M_h``), ``"k"`` (with ``M_h^-T``) or
    ``"v"`` (with ``N_h``).
    """

    tensor: str
    axis: int
    side: str
    positions: np.ndarray
    factors: tuple[tuple[int, Char], ...] = ()
    fibre: str | None = None

    def describe(self) -> str:
        factor = ""
        if self.factors:
            factor = " x " + "*".join(
                f"{char.describe()}[{component}]" for component, char in self.factors
            )
        elif self.fibre:
            factor = f" ({self.fibre})"
        return f"{self.tensor}[{self.axis}] {self.side}{factor}"


@dataclass(frozen=True)
class Component:
    """One independent scale vector of a monomial site and its scalar group."""

    name: str
    scalars: ScalarGroup


@dataclass
class Site:
    """A set of hidden units and the group that acts on them.

    ``size`` is the number of units (or of heads, for attention). ``notes``
    records where the group comes from (activations and their query
    status, the ops that restrict it).
    """

    name: str
    kind: str
    size: int
    actions: list[Action]
    components: tuple[Component, ...] = ()
    colours: np.ndarray | None = None
    orthogonal: bool = False
    qk_dim: int = 0
    vo_dim: int = 0
    permute_heads: bool = True
    qk_group: str = "identity"
    vo_group: str = "identity"
    notes: list[str] = field(default_factory=list)
    #: With ``colours``: whether a permutation may also map one colour class
    #: onto another of equal size (GroupNorm moves whole groups), instead of
    #: keeping every unit in its own class.
    permute_colours: bool = False

    def rows_of(self, action: Action) -> int:
        """Rows of ``action.positions``: units, or heads times the block width."""
        if self.kind != "attention":
            return self.size
        return self.size * (self.vo_dim if action.fibre == "v" else self.qk_dim)

    def describe_group(self) -> str:
        if self.kind == "general_linear":
            kind = "orthogonal" if self.orthogonal else "all invertible"
            return f"GL({self.size}): {kind} matrices (sampled orthogonal)"
        if self.kind == "attention":
            parts = [f"{self.size} heads"]
            parts.append("heads permuted" if self.permute_heads else "heads fixed")
            if self.qk_group == "general_linear":
                parts.append(f"per-head GL({self.qk_dim}) on query/key")
            if self.vo_group == "general_linear":
                parts.append(f"per-head GL({self.vo_dim}) on value/output")
            return ", ".join(parts)
        perm = "permutations"
        if self.colours is not None and len(np.unique(self.colours)) > 1:
            count = len(np.unique(self.colours))
            perm = f"permutations within {count} groups"
            if self.permute_colours:
                perm = f"permutations of {count} whole groups and within each"
        scalings = [
            f"{c.name}: {c.scalars.describe()}"
            for c in self.components
            if c.scalars.kind != "trivial"
        ]
        return perm + (" x " + "; ".join(scalings) if scalings else "")


@dataclass(frozen=True)
class ExcludedSite:
    """Hidden units that the analysis found but cannot transform, and why."""

    name: str
    size: int
    reason: str
    tensors: tuple[str, ...] = ()


@dataclass
class TensorInfo:
    """Shape, dtype and kind (``parameter`` or ``buffer``) of a model tensor."""

    shape: tuple[int, ...]
    dtype: str
    kind: str

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith(("float", "bfloat", "complex"))


class SymmetrySpec:
    """The weight-space symmetry group that :func:`find_symmetries` found.

    ``sites`` lists the usable sites, ``excluded`` the hidden units left out
    with the reason, ``invariant`` maps each tensor that no element changes
    to the reason, and ``aliases`` maps every tied name to its canonical
    name. ``tensors`` describes every parameter and buffer of the model;
    :meth:`validate` checks that the sites cover them consistently.
    """

    def __init__(
        self,
        sites: Sequence[Site],
        tensors: Mapping[str, TensorInfo],
        *,
        invariant: Mapping[str, str] | None = None,
        excluded: Sequence[ExcludedSite] = (),
        aliases: Mapping[str, str] | None = None,
        capture: str = "",
        notes: Sequence[str] = (),
    ) -> None:
        self.sites = list(sites)
        self.tensors = dict(tensors)
        self.invariant = dict(invariant or {})
        self.excluded = list(excluded)
        self.aliases = dict(aliases or {})
        self.capture = capture
        self.notes = list(notes)
        #: The example inputs of the discovery, kept for ``apply_transform``
        #: checks; not serialised.
        self.example_inputs: Any = None

    # ------------------------------------------------------------------
    # Lookup

    def site(self, name: str) -> Site:
        """Return the site called ``name``."""
        for site in self.sites:
            if site.name == name:
                return site
        raise SpecError(
            f"site {name!r} not found; the sites are {[s.name for s in self.sites]}"
        )

    def fingerprint(self) -> str:
        """Return a hash of the site structure that a transform must match."""
        layout = [
            [s.name, s.kind, s.size, s.qk_dim, s.vo_dim, len(s.components)]
            for s in self.sites
        ]
        return hashlib.sha256(json.dumps(layout).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------
    # Validation

    def validate(self) -> None:
        """Check that the spec is consistent; raise :class:`SpecError` if not.

        The rules: site names are unique; every action names a known
        floating-point tensor, a valid axis and positions inside that axis
        with as many rows as its site has; within one tensor axis no position
        is touched twice; every tensor of ``tensors`` is acted on or listed in
        ``invariant`` (never both); aliases point at known canonical tensors
        and are neither acted on nor listed again.
        """
        names = [site.name for site in self.sites]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"site names must be unique, got duplicates {duplicates}")
        touched: dict[tuple[str, int], np.ndarray] = {}
        acted: set[str] = set()
        for site in self.sites:
            self._validate_site(site)
            for action in site.actions:
                self._validate_action(site, action)
                key = (action.tensor, action.axis)
                size = self.tensors[action.tensor].shape[action.axis]
                mask = touched.setdefault(key, np.zeros(size, dtype=bool))
                flat = action.positions.ravel()
                if mask[flat].any() or len(np.unique(flat)) != flat.size:
                    overlap = sorted(set(np.flatnonzero(mask)) & set(flat.tolist()))
                    raise SpecError(
                        f"tensor {action.tensor!r} axis {action.axis} is covered "
                        f"more than once (site {site.name!r}, positions "
                        f"{overlap[:5] or 'repeated'}); each position takes at "
                        "most one action"
                    )
                mask[flat] = True
                acted.add(action.tensor)
        for alias, canonical in self.aliases.items():
            if canonical not in self.tensors:
                raise SpecError(
                    f"alias {alias!r} points at unknown tensor {canonical!r}"
                )
            if alias in self.tensors or alias in acted or alias in self.invariant:
                raise SpecError(
                    f"tied name {alias!r} is listed again; only its canonical name "
                    f"{canonical!r} may be covered"
                )
        for name in self.tensors:
            if name in acted and name in self.invariant:
                raise SpecError(
                    f"tensor {name!r} is both acted on and listed as invariant"
                )
            if name not in acted and name not in self.invariant:
                raise SpecError(
                    f"tensor {name!r} is neither acted on nor listed as invariant; "
                    "every parameter and buffer must be covered"
                )
        for name in self.invariant:
            if name not in self.tensors:
                raise SpecError(f"invariant tensor {name!r} is not a model tensor")

    def _validate_site(self, site: Site) -> None:
        if site.kind not in SITE_KINDS:
            raise SpecError(
                f"site {site.name!r} has kind {site.kind!r}; expected one of "
                f"{SITE_KINDS}"
            )
        if site.size < 1:
            raise SpecError(f"site {site.name!r} has size {site.size!r}; expected >= 1")
        if site.kind == "monomial" and not site.components:
            raise SpecError(f"monomial site {site.name!r} has no component")
        if site.kind == "attention":
            if site.qk_dim < 1 or site.vo_dim < 1:
                raise SpecError(
                    f"attention site {site.name!r} needs qk_dim and vo_dim >= 1, "
                    f"got {site.qk_dim!r} and {site.vo_dim!r}"
                )
            for group in (site.qk_group, site.vo_group):
                if group not in BLOCK_GROUPS:
                    raise SpecError(
                        f"attention site {site.name!r} has block group {group!r}; "
                        f"expected one of {BLOCK_GROUPS}"
                    )
        if site.colours is not None and len(site.colours) != site.size:
            raise SpecError(
                f"site {site.name!r} has {len(site.colours)} colours for "
                f"{site.size} units"
            )

    def _validate_action(self, site: Site, action: Action) -> None:
        info = self.tensors.get(action.tensor)
        if info is None:
            raise SpecError(
                f"site {site.name!r} acts on unknown tensor {action.tensor!r}"
            )
        if not info.is_float:
            raise SpecError(
                f"site {site.name!r} acts on {action.tensor!r} of dtype "
                f"{info.dtype}; only floating-point tensors can be transformed"
            )
        if not 0 <= action.axis < len(info.shape):
            raise SpecError(
                f"action on {action.tensor!r} has axis {action.axis!r}; the tensor "
                f"has shape {info.shape}"
            )
        if action.side not in SIDES:
            raise SpecError(
                f"action on {action.tensor!r} has side {action.side!r}; expected "
                f"one of {SIDES}"
            )
        positions = action.positions
        if positions.ndim != 2 or positions.shape[0] != site.rows_of(action):
            raise SpecError(
                f"action on {action.tensor!r} of site {site.name!r} has positions of "
                f"shape {positions.shape}; expected ({site.rows_of(action)}, replicas)"
            )
        size = info.shape[action.axis]
        if positions.size and (positions.min() < 0 or positions.max() >= size):
            raise SpecError(
                f"action on {action.tensor!r} axis {action.axis} has positions "
                f"outside 0..{size - 1}"
            )
        if site.kind == "monomial":
            for component, _ in action.factors:
                if not 0 <= component < len(site.components):
                    raise SpecError(
                        f"action on {action.tensor!r} names component {component!r} "
                        f"of site {site.name!r}, which has {len(site.components)}"
                    )
        if site.kind == "attention" and action.fibre not in FIBRES:
            raise SpecError(
                f"attention action on {action.tensor!r} has fibre "
                f"{action.fibre!r}; expected one of {FIBRES}"
            )

    # ------------------------------------------------------------------
    # Sampling

    def sample(self, seed: int | None = None, *, scalings: str = "dyadic") -> Transform:
        """Draw a random element of the whole group; equal seeds give equal draws.

        Permutations are uniform (within colours) and every general linear
        block is a Haar-random orthogonal matrix. Continuous scalings are
        powers of two by default (``scalings="dyadic"``), so that monomial
        sites move float weights without rounding; ``"lognormal"`` draws
        ``exp(N(0, 0.5))`` magnitudes instead
        (:func:`nn_bridge._transform.sample_scalars`).
        """
        from ._transform import Transform, sample_site

        rng = np.random.default_rng(seed)
        return Transform(
            {site.name: sample_site(site, rng, scalings) for site in self.sites},
            self.fingerprint(),
        )

    def identity(self) -> Transform:
        """Return the identity element."""
        from ._transform import Transform

        return Transform.identity(self)

    # ------------------------------------------------------------------
    # Text and JSON

    def table(self) -> str:
        """Return the sites, their groups and the tensors they touch as text."""
        lines = [
            f"SymmetrySpec ({self.capture or 'hand-built'}): {len(self.sites)} sites"
        ]
        header = f"{'site':<44} {'kind':<15} {'size':>5}  group"
        lines += [header, "-" * len(header)]
        for site in self.sites:
            lines.append(
                f"{site.name:<44} {site.kind:<15} {site.size:>5}  "
                f"{site.describe_group()}"
            )
            for action in site.actions:
                lines.append(f"{'':<6}{action.describe()}")
            for note in site.notes:
                lines.append(f"{'':<6}note: {note}")
        if self.excluded:
            lines.append("")
            lines.append(f"excluded hidden units ({len(self.excluded)}):")
            for item in self.excluded:
                lines.append(f"  {item.name} ({item.size}): {item.reason}")
        if self.invariant:
            lines.append("")
            lines.append(f"invariant tensors ({len(self.invariant)}):")
            for name, reason in self.invariant.items():
                lines.append(f"  {name}: {reason}")
        if self.aliases:
            lines.append("")
            lines.append("tied tensors:")
            for alias, canonical in self.aliases.items():
                lines.append(f"  {alias} is {canonical}")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (
            f"SymmetrySpec({len(self.sites)} sites, {len(self.excluded)} excluded, "
            f"{len(self.tensors)} tensors)"
        )

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; :meth:`from_json` inverts it."""
        return {
            "format": SPEC_FORMAT,
            "capture": self.capture,
            "sites": [_site_to_json(site) for site in self.sites],
            "excluded": [
                {
                    "name": e.name,
                    "size": e.size,
                    "reason": e.reason,
                    "tensors": list(e.tensors),
                }
                for e in self.excluded
            ],
            "invariant": dict(self.invariant),
            "aliases": dict(self.aliases),
            "tensors": {
                name: {
                    "shape": list(info.shape),
                    "dtype": info.dtype,
                    "kind": info.kind,
                }
                for name, info in self.tensors.items()
            },
            "notes": list(self.notes),
        }

    def dumps(self) -> str:
        """Return :meth:`to_json` as JSON text."""
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def from_json(cls, obj: Any) -> SymmetrySpec:
        """Rebuild a spec from :meth:`to_json` output and validate it.

        Raises :class:`SpecError` on a malformed object.
        """
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as error:
                raise SpecError(f"spec text is not valid JSON: {error}") from None
        if not isinstance(obj, dict) or obj.get("format") != SPEC_FORMAT:
            got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
            raise SpecError(
                f"spec JSON must be an object with format {SPEC_FORMAT}, got {got!r}"
            )
        try:
            tensors = {
                name: TensorInfo(
                    tuple(int(s) for s in t["shape"]), t["dtype"], t["kind"]
                )
                for name, t in obj["tensors"].items()
            }
            sites = [_site_from_json(s) for s in obj["sites"]]
            excluded = [
                ExcludedSite(
                    e["name"], int(e["size"]), e["reason"], tuple(e["tensors"])
                )
                for e in obj["excluded"]
            ]
            spec = cls(
                sites,
                tensors,
                invariant=obj["invariant"],
                excluded=excluded,
                aliases=obj["aliases"],
                capture=obj["capture"],
                notes=obj["notes"],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise SpecError(f"malformed spec JSON: {error!r}") from None
        spec.validate()
        return spec


def positions_to_json(positions: np.ndarray) -> dict[str, Any]:
    """Store positions compactly when they form an affine pattern."""
    rows, replicas = positions.shape
    if rows and replicas:
        offset = int(positions[0, 0])
        row_stride = int(positions[1, 0] - offset) if rows > 1 else 0
        replica_stride = int(positions[0, 1] - offset) if replicas > 1 else 0
        expected = (
            offset
            + row_stride * np.arange(rows)[:, None]
            + replica_stride * np.arange(replicas)[None, :]
        )
        if np.array_equal(expected, positions):
            return {
                "rows": rows,
                "replicas": replicas,
                "offset": offset,
                "row_stride": row_stride,
                "replica_stride": replica_stride,
            }
    return {"list": positions.tolist()}


def positions_from_json(obj: Any) -> np.ndarray:
    if "list" in obj:
        array = np.asarray(obj["list"], dtype=np.int64)
        return array.reshape(len(obj["list"]), -1)
    rows, replicas = int(obj["rows"]), int(obj["replicas"])
    return (
        int(obj["offset"])
        + int(obj["row_stride"]) * np.arange(rows, dtype=np.int64)[:, None]
        + int(obj["replica_stride"]) * np.arange(replicas, dtype=np.int64)[None, :]
    )


def _site_to_json(site: Site) -> dict[str, Any]:
    return {
        "name": site.name,
        "kind": site.kind,
        "size": site.size,
        "components": [
            {"name": c.name, "scalars": c.scalars.to_json()} for c in site.components
        ],
        "colours": None if site.colours is None else site.colours.tolist(),
        "orthogonal": site.orthogonal,
        "qk_dim": site.qk_dim,
        "vo_dim": site.vo_dim,
        "permute_heads": site.permute_heads,
        "qk_group": site.qk_group,
        "vo_group": site.vo_group,
        "notes": list(site.notes),
        "permute_colours": site.permute_colours,
        "actions": [
            {
                "tensor": a.tensor,
                "axis": a.axis,
                "side": a.side,
                "positions": positions_to_json(a.positions),
                "factors": [[c, char.to_json()] for c, char in a.factors],
                "fibre": a.fibre,
            }
            for a in site.actions
        ],
    }


def _site_from_json(obj: dict[str, Any]) -> Site:
    colours = obj["colours"]
    return Site(
        name=obj["name"],
        kind=obj["kind"],
        size=int(obj["size"]),
        actions=[
            Action(
                tensor=a["tensor"],
                axis=int(a["axis"]),
                side=a["side"],
                positions=positions_from_json(a["positions"]),
                factors=tuple((int(c), Char.from_json(ch)) for c, ch in a["factors"]),
                fibre=a["fibre"],
            )
            for a in obj["actions"]
        ],
        components=tuple(
            Component(c["name"], ScalarGroup.from_json(c["scalars"]))
            for c in obj["components"]
        ),
        colours=None if colours is None else np.asarray(colours, dtype=np.int64),
        orthogonal=bool(obj["orthogonal"]),
        qk_dim=int(obj["qk_dim"]),
        vo_dim=int(obj["vo_dim"]),
        permute_heads=bool(obj["permute_heads"]),
        qk_group=obj["qk_group"],
        vo_group=obj["vo_group"],
        notes=list(obj["notes"]),
        # Absent from JSON written before the field existed.
        permute_colours=bool(obj.get("permute_colours", False)),
    )


# Imported at the end for the type of ``sample``'s result.
from ._transform import Transform  # noqa: E402
