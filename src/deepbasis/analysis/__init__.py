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
from .spline import (
    BDSO,
    LayerCrossings,
    Spline,
    bdso,
    count_pieces,
    count_regions,
    spline_of,
)
from .variance_flow import (
    FixedPoint,
    backward_map,
    bifurcation_scale,
    fixed_points,
    forward_map,
    variance_flow,
)

__all__ = [
    "BDSO",
    "BoxImage",
    "CovarianceRatios",
    "FixedPoint",
    "LayerCrossings",
    "Spline",
    "backward_map",
    "basis_functions",
    "bdso",
    "bifurcation_scale",
    "box_image",
    "count_pieces",
    "count_regions",
    "covariance_ratios",
    "empirical_ntk",
    "feature_covariance_ratios",
    "fixed_points",
    "forward_map",
    "image_area",
    "image_diameter",
    "image_volume",
    "initial_basis_loss",
    "kernel_width",
    "normalize_rows",
    "spline_of",
    "variance_flow",
]
