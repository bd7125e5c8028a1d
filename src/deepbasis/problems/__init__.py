"""Targets and problems from the papers."""

from .functions import TARGETS, grid, legendre, sin2pi, target, u1

__all__ = ["TARGETS", "grid", "legendre", "sin2pi", "target", "u1"]
