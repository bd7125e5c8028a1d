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
from .spline import (
    BDSO,
    LayerCrossings,
    Spline,
    bdso,
    count_pieces,
    count_regions,
    spline_of,
)

__all__ = [
    "BDSO",
    "BoxImage",
    "CovarianceRatios",
    "LayerCrossings",
    "Spline",
    "basis_functions",
    "bdso",
    "box_image",
    "count_pieces",
    "count_regions",
    "covariance_ratios",
    "feature_covariance_ratios",
    "image_area",
    "image_diameter",
    "image_volume",
    "initial_basis_loss",
    "spline_of",
]
