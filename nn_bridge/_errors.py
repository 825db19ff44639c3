"""The errors that ``nn_bridge`` raises on purpose.

Every class derives from :class:`NNBridgeError`, which derives from
:class:`symgroups._errors.SymgroupsError`, so one ``except`` clause catches
every deliberate failure of the toolkit.
"""

from __future__ import annotations

from symgroups._errors import SymgroupsError


class NNBridgeError(SymgroupsError):
    """Root of the errors raised by ``nn_bridge``."""


class InvalidArgumentError(NNBridgeError):
    """An argument of a public function has an invalid type or value."""


class CaptureError(NNBridgeError):
    """``torch.export`` could not capture the graph, or it cannot be analysed."""


class SpecError(NNBridgeError):
    """A :class:`SymmetrySpec` is inconsistent or its JSON form is malformed."""


class ModelMismatchError(NNBridgeError):
    """A spec or transform does not describe the model it is applied to."""


class TransformError(NNBridgeError):
    """A transform does not fit its spec, or an element is outside its group."""


class FunctionChangedError(NNBridgeError):
    """A transformed model's outputs deviate beyond the tolerance.

    ``evidence`` is the :class:`nn_bridge.PreservationReport` of the check.
    """
