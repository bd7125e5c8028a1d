"""What a network *is*: basis networks with a linear head, and compositional networks."""

from .compositional import (
    CompositionalNet,
    ConstructionViolationError,
    ConstructionViolationWarning,
    eq5_scales,
    triangle,
)
from .mlp import ACTIVATIONS, MLP, Sine, make_activation, mean_network

__all__ = [
    "ACTIVATIONS",
    "CompositionalNet",
    "ConstructionViolationError",
    "ConstructionViolationWarning",
    "MLP",
    "Sine",
    "eq5_scales",
    "make_activation",
    "mean_network",
    "triangle",
]
