"""How we *look* at a network (never trains)."""

from .basis import basis_functions, initial_basis_loss

__all__ = ["basis_functions", "initial_basis_loss"]
