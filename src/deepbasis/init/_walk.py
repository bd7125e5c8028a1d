"""Find the hidden linear layers and the head of a network, in forward order."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class LinearLayers:
    """The ``nn.Linear`` layers of a network: hidden ones in forward order, and the head."""

    hidden: list[nn.Linear]
    head: nn.Linear | None
    residual: bool


def linear_layers(module: nn.Module) -> LinearLayers:
    """Split ``module`` into hidden ``nn.Linear`` layers (forward order) and its linear head.

    - A basis network (anything with ``head: nn.Linear``, e.g. :class:`deepbasis.MLP`): the head
      is ``module.head``; the hidden layers are ``module.layers`` when present, otherwise every
      other ``nn.Linear`` in registration order.
    - An ``nn.Sequential`` (or any module) of ``nn.Linear`` and activation layers: the last
      ``nn.Linear`` is the head, the others are hidden, in registration order (which is forward
      order for ``nn.Sequential``).
    - A bare ``nn.Linear``: treated as one hidden layer with no head.
    """
    if isinstance(module, nn.Linear):
        return LinearLayers([module], None, False)
    residual = bool(getattr(module, "residual", False))
    head = getattr(module, "head", None)
    if isinstance(head, nn.Linear):
        layers = getattr(module, "layers", None)
        if layers is not None:
            hidden = [m for m in layers if isinstance(m, nn.Linear)]
        else:
            hidden = [m for m in module.modules() if isinstance(m, nn.Linear) and m is not head]
        return LinearLayers(hidden, head, residual)
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(
            f"{type(module).__name__} has no nn.Linear layers to initialize; pass a "
            "deepbasis.MLP, an nn.Sequential of nn.Linear and activation layers, or an nn.Linear"
        )
    if len(linears) == 1:
        return LinearLayers(linears, None, residual)
    return LinearLayers(linears[:-1], linears[-1], residual)
