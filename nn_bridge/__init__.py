"""Weight-space symmetries of PyTorch models from ``symgroups`` intertwiner groups.

:func:`find_symmetries` captures a model's graph and lists its hidden-unit
sites with the group acting on each; :meth:`SymmetrySpec.sample` draws an
element; :func:`apply_transform` moves the weights by it and checks, with
:func:`check_function_preserved`, that the outputs stay the same.
"""

from ._affine import (
    AffineSite,
    AffineSymmetrySpec,
    AffineTransform,
    apply_affine_transform,
)
from ._affine_discover import find_affine_symmetries
from ._align import AlignmentResult, align
from ._apply import apply_transform
from ._canonical import CanonicalForm, canonicalize
from ._check import OutputDeviation, PreservationReport, check_function_preserved
from ._discover import capture_graph, find_symmetries
from ._errors import (
    CaptureError,
    FunctionChangedError,
    InvalidArgumentError,
    ModelMismatchError,
    NNBridgeError,
    SpecError,
    TransformError,
)
from ._groups import ActivationGroup, SymgroupsResolver, fixed_group_resolver
from ._merge import InterpolationResult, interpolate
from ._rotate import RotationResult, rotate_residual_stream
from ._scalars import Char, ScalarGroup
from ._spec import Action, Component, ExcludedSite, Site, SymmetrySpec, TensorInfo
from ._transform import SiteElement, Transform

__all__ = [
    "AffineSite",
    "AffineSymmetrySpec",
    "AffineTransform",
    "apply_affine_transform",
    "find_affine_symmetries",
    "Action",
    "AlignmentResult",
    "CanonicalForm",
    "InterpolationResult",
    "align",
    "canonicalize",
    "interpolate",
    "ActivationGroup",
    "CaptureError",
    "Char",
    "Component",
    "ExcludedSite",
    "FunctionChangedError",
    "InvalidArgumentError",
    "ModelMismatchError",
    "NNBridgeError",
    "OutputDeviation",
    "PreservationReport",
    "RotationResult",
    "ScalarGroup",
    "Site",
    "SiteElement",
    "SpecError",
    "SymgroupsResolver",
    "SymmetrySpec",
    "TensorInfo",
    "Transform",
    "TransformError",
    "apply_transform",
    "capture_graph",
    "check_function_preserved",
    "find_symmetries",
    "rotate_residual_stream",
    "fixed_group_resolver",
]
