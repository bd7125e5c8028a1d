"""How a network *starts*: initializers with torch.nn.init conventions.

Every initializer is ``name_(module, ..., generator=None) -> module``: it changes ``module`` in
place and takes every random draw from ``generator``. :func:`initialize_` looks one up by name.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .._checks import GeneratorLike, check_choice
from .box import box_, box_layer_parameters
from .breakpoints import alpha_scale_, random_cpwl, set_spline_, spiky_, uniform_breakpoints_
from .classic import glorot_, he_, orthogonal_, raai_, raai_layer_parameters, torch_default_
from .compositional import compositional_peaks_
from .go import GOHistory, feature_cosines, go_, go_module_, mean_squared_cosine

INITIALIZERS: dict[str, Callable[..., nn.Module]] = {
    "torch_default": torch_default_,
    "he": he_,
    "glorot": glorot_,
    "orthogonal": orthogonal_,
    "box": box_,
    "go": go_module_,  # calibrates on data: initialize_(model, "go", x=inputs)
    "raai": raai_,
}


def initialize_(module: nn.Module, name: str, *, generator: GeneratorLike = None,
                **options) -> nn.Module:
    """Initialize ``module`` in place with the initializer called ``name``.

    Valid names are the keys of :data:`INITIALIZERS` ('box', 'he', 'glorot', 'orthogonal',
    'raai', 'torch_default', 'go'); an unknown name raises a ``ValueError`` that lists them.
    'go' calibrates on data and needs ``x=inputs`` among the options. The spline-view
    initializers (:func:`uniform_breakpoints_`, :func:`alpha_scale_`, :func:`spiky_`) need a
    data range or a scale, so they are called directly, not by name.
    """
    check_choice("initializer", name, INITIALIZERS)
    return INITIALIZERS[name](module, generator=generator, **options)


__all__ = [
    "GOHistory",
    "INITIALIZERS",
    "alpha_scale_",
    "box_",
    "box_layer_parameters",
    "compositional_peaks_",
    "feature_cosines",
    "glorot_",
    "go_",
    "go_module_",
    "he_",
    "initialize_",
    "mean_squared_cosine",
    "orthogonal_",
    "raai_",
    "raai_layer_parameters",
    "random_cpwl",
    "set_spline_",
    "spiky_",
    "torch_default_",
    "uniform_breakpoints_",
]
