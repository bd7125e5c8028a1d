"""What a network *is*: basis networks with a linear head."""

from .mlp import ACTIVATIONS, MLP, Sine, make_activation

__all__ = ["ACTIVATIONS", "MLP", "Sine", "make_activation"]
