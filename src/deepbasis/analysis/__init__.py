"""How we *look* at a network (never trains)."""

from .basis import basis_functions, initial_basis_loss
from .dynamics import BDSOVelocity, alpha_scale, bdso_velocity, parameter_velocity
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
from .loss_surface import (
    HessianSpectrum,
    KnotClassification,
    PiecewiseOLS,
    classify_knots,
    data_partition,
    hessian_spectrum,
    is_lonely,
    lonely_probability,
    loss_hessian,
    piecewise_ols_test,
)
from .ntk import empirical_ntk, kernel_width, normalize_rows
from .shallow import ShallowParams
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
from .watch import BreakpointWatch, LayerChange, WatchRecord, breakpoint_density

__all__ = [
    "BDSO",
    "BDSOVelocity",
    "BoxImage",
    "BreakpointWatch",
    "CovarianceRatios",
    "FixedPoint",
    "HessianSpectrum",
    "KnotClassification",
    "LayerChange",
    "LayerCrossings",
    "PiecewiseOLS",
    "ShallowParams",
    "Spline",
    "WatchRecord",
    "alpha_scale",
    "backward_map",
    "basis_functions",
    "bdso",
    "bdso_velocity",
    "bifurcation_scale",
    "box_image",
    "breakpoint_density",
    "classify_knots",
    "count_pieces",
    "count_regions",
    "covariance_ratios",
    "data_partition",
    "empirical_ntk",
    "feature_covariance_ratios",
    "fixed_points",
    "forward_map",
    "hessian_spectrum",
    "image_area",
    "image_diameter",
    "image_volume",
    "initial_basis_loss",
    "is_lonely",
    "kernel_width",
    "lonely_probability",
    "loss_hessian",
    "normalize_rows",
    "parameter_velocity",
    "piecewise_ols_test",
    "spline_of",
    "variance_flow",
]
