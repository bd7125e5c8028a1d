"""How we *look* at a network (never trains)."""

from .basis import basis_functions, initial_basis_loss
from .geometry import (
    BoxImage,
    CovarianceRatios,
    box_image,
    covariance_ratios,
    feature_covariance_ratios,
    image_area,
    image_diameter,
    image_volume,
)
from .ntk import empirical_ntk, kernel_width, normalize_rows
from .variance_flow import (
    FixedPoint,
    backward_map,
    bifurcation_scale,
    fixed_points,
    forward_map,
    variance_flow,
)

__all__ = [
    "BoxImage",
    "CovarianceRatios",
    "FixedPoint",
    "backward_map",
    "bifurcation_scale",
    "fixed_points",
    "forward_map",
    "variance_flow",
    "basis_functions",
    "box_image",
    "covariance_ratios",
    "empirical_ntk",
    "feature_covariance_ratios",
    "image_area",
    "image_diameter",
    "image_volume",
    "initial_basis_loss",
    "kernel_width",
    "normalize_rows",
]
