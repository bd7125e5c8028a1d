r"""The fast path of :func:`deepbasis.fit` and :func:`deepbasis.fit_ensemble`: E
:class:`~deepbasis.MLP` regressions trained as one computation, each member exactly as if alone.

``fit(model, x, y)`` on an :class:`~deepbasis.MLP` runs here with E = 1, and ``fit_ensemble``
with E members; any other basis network or problem takes the generic engines
(:mod:`deepbasis.train.engines.single`, :mod:`deepbasis.train.engines.vmap`).

**Why a second implementation of the MLP forward pass.** LSGD with Adam amplifies rounding:
LSGD makes some hidden gradients zero in exact arithmetic (the residual is orthogonal to every
basis function), so their computed values are rounding noise, which Adam divides by
``sqrt(v) + eps`` — up to ``lr / eps`` times larger — and the least-squares heads of a
near-singular basis pass on. A member of a batched run that rounds *anything* differently from
a separate run leaves it within tens of steps (measured: 44 % apart in the loss after 200 steps
at width 32, depth 4). So "each member gets what a separate run gives" needs every operation to
give member e the same bits whatever E is. Measured on this CPU (MKL, 1 and 2 threads), the
batched kernels do, except:

- a batched product with one column or one inner dimension (``bmm`` of ``(N, k) @ (k, 1)`` or
  ``(N, 1) @ (1, n)``): E = 1 is a matrix-vector product, E > 1 a different batched kernel.
  Such products are written here as broadcast products and sums: the single-output head
  prediction ``Σ_j A_nj θ_j`` and the first layer of a 1-D input;
- elementwise functions that are not exactly rounded (tanh, sigmoid, sin, GELU) use a
  vectorized kernel for whole SIMD vectors and a scalar one for the tail of the tensor, and the
  two differ in the last bit; they are applied to each member's block separately;
- the optimizer: each member's trainable parameters are one flat leaf tensor of its own, and
  the optimizer steps the E leaves one at a time (PyTorch's per-tensor loops), so member e is
  stepped by the same kernel call on the same data for every E. Each iteration stacks the
  leaves into ``(E, P)`` and splits that into the layers' views (one ``split``, whose
  backward is one concatenation; one optimizer tensor per member also keeps the optimizer's
  per-tensor Python overhead out of the loop).

The test suite checks members against separate runs bit for bit (tests/test_ensemble.py).

**Limits** (measured, MKL): with one thread the kernels above are E-exact at every size tried
(N up to 50,000) on the Intel machine they were first measured on; on an AMD EPYC (AVX2) MKL's
default code path rounds the batched and the single products differently, and members are
exact only with ``MKL_CBWR=COMPATIBLE`` set before Python starts (the test suite sets it).
With more threads, MKL splits one member's weight-gradient product ``hᵀ δ`` (an inner dimension
of N) between the threads when E = 1 but not in a batch, so a member agrees with its separate
run only up to rounding (on the AMD machine from N = 77 points on) — and LSGD then carries that
to O(1), like any other rounding difference. The experiment runner gives
each cell one thread, so its ensembles are exact. Other BLAS builds and CUDA were not measured.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ...nn.mlp import ACTIVATIONS, MLP
from ..loop import Engine, trained_parameters
from ..lstsq import solve_head
from ..optim import make_optimizer
from ..problem import Regression

# Activations that are exact in every kernel (a comparison, or nothing): applied to the whole
# (E, N, w) tensor at once; the others are applied member by member (see the module docstring).
_EXACT_ACTIVATIONS = ("relu", "identity")


def stackable(model: nn.Module, problem: object) -> bool:
    """Whether ``model`` and ``problem`` can take the stacked fast path."""
    if type(model) is not MLP or type(problem) is not Regression:
        return False
    if model.width < 2 or not isinstance(model.activation, ACTIVATIONS[model.activation_name]):
        return False  # width 1: every product would be a matrix-vector product
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return False  # the fast path does not call the modules, so hooks would not run
    if not all(type(layer) is nn.Linear for layer in [*model.layers, model.head]):
        return False
    # Exactly each layer's weight and bias: no missing bias, no parametrization.
    names = {name for name, _ in model.named_parameters()}
    return names == {f"{prefix}.{kind}" for prefix in
                     [f"layers.{i}" for i in range(model.depth)] + ["head"]
                     for kind in ("weight", "bias")}


def _t(tensor: torch.Tensor, batched: bool = False) -> torch.Tensor:
    """A weight transposed (a view), a bias unchanged."""
    return tensor.mT if tensor.ndim == 2 + batched else tensor


class StackedMLPEngine(Engine):
    """E :class:`MLP` members on one :class:`Regression`, trained together."""

    def __init__(self, models: list[MLP], problem: Regression, method: str, optimizer: str,
                 lr: float, optimizer_options, lstsq_method: str, rcond, ridge: float) -> None:
        first = models[0]
        self.models = models
        self.n_members = E = len(models)
        self.device = first.head.weight.device
        self.lsgd = method == "lsgd"
        self.solve = dict(method=lstsq_method, rcond=rcond, ridge=ridge)
        self.residual = first.residual
        self.activation = first.activation
        self.exact_activation = first.activation_name in _EXACT_ACTIVATIONS
        self.relu = first.activation_name == "relu"
        self.width = first.width
        self.depth = first.depth

        # Parameters: each member's trained ones are one flat leaf (a copy of the model's); the
        # rest (the LSGD head, anything with requires_grad=False) are (E, ...) tensors.
        trained_ids = {id(p) for p in trained_parameters(first, first.head, method)}
        self.trained_names = [n for n, p in first.named_parameters() if id(p) in trained_ids]
        # Weights are stored transposed, (in, out), as the products use them: the gradient then
        # arrives in the storage's layout (no transposing copy per layer and step).
        self.shapes = [tuple(_t(first.get_parameter(n)).shape) for n in self.trained_names]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.member_params = [dict(m.named_parameters()) for m in models]
        with torch.no_grad():
            self.flats = [torch.cat([_t(params[n].detach()).reshape(-1)
                                     for n in self.trained_names]).requires_grad_()
                          for params in self.member_params]  # E × (P,)
            self.fixed = {name: torch.stack([params[name].detach() for params in
                                             self.member_params])
                          for name in self.member_params[0]
                          if name not in self.trained_names}  # name: (E, ...)
        self.optimizer = make_optimizer(optimizer, self.flats, lr, optimizer_options)

        # Data: each member's normalized inputs (members may have different domains).
        with torch.no_grad():
            self.inputs = torch.stack([m.normalize(problem.x) for m in models])  # (E, N, d)
        self.scale = problem._scale  # √(1/N)
        self.targets = problem.y.to(self.inputs.dtype)  # (N, m)
        self.ones = torch.ones(E, problem.x.shape[0], 1, dtype=self.inputs.dtype,
                               device=self.device)  # (E, N, 1): the head-bias column
        self.theta: torch.Tensor | None = None  # LSGD's (E, w + 1, m), written on demand
        self.frozen: dict[int, dict[str, torch.Tensor]] = {}

    # -- the iteration -----------------------------------------------------------------------

    def _parameters(self) -> dict[str, torch.Tensor]:
        E = self.n_members
        stacked = self.flats[0][None] if E == 1 else torch.stack(self.flats)  # (E, P)
        params = {name: _t(t, batched=True) for name, t in self.fixed.items()}  # (E, in, out)
        for name, shape, part in zip(self.trained_names, self.shapes,
                                     stacked.split(self.sizes, dim=1), strict=True):
            params[name] = part.view(E, *shape)
        return params

    def _activate(self, z: torch.Tensor) -> torch.Tensor:
        if self.relu:
            return torch.relu_(z)  # z is a fresh product nothing else reads: saves a tensor
        if self.exact_activation or self.n_members == 1:
            return self.activation(z)
        return torch.stack([self.activation(member) for member in z])

    def forward(self) -> torch.Tensor:
        p = self._parameters()
        weight, bias = p["layers.0.weight"], p["layers.0.bias"]  # (E, d, w), (E, w)
        x = self.inputs  # (E, N, d)
        if x.shape[-1] == 1:  # a broadcast product: bmm with one inner dimension is not E-exact
            z = x * weight + bias[:, None, :]  # (E, N, w)
        else:
            z = torch.baddbmm(bias[:, None, :], x, weight)  # (E, N, w)
        h = self._activate(z)
        for layer in range(1, self.depth):
            weight, bias = p[f"layers.{layer}.weight"], p[f"layers.{layer}.bias"]
            z = self._activate(torch.baddbmm(bias[:, None, :], h, weight))  # (E, N, w)
            h = h + z if self.residual else z
        # The rows are not scaled by √(1/N): the LS solution is the same, and the loss is
        # scaled instead (one multiplication of a scalar, not of A, in each direction).
        A = torch.cat([h, self.ones], dim=-1)  # (E, N, w + 1)
        if self.lsgd:
            if self.n_members == 1:  # solve_head's hot path for one matrix: the same LAPACK call
                theta = solve_head(A[0].detach(), self.targets, **self.solve)[None]
            else:
                theta = solve_head(A.detach(), self.targets, **self.solve)  # (E, w + 1, m)
            self.theta = theta
        else:
            theta = torch.cat([p["head.weight"], p["head.bias"][:, None, :]], dim=1)
        if theta.shape[-1] == 1:  # one output: a broadcast product, not a matrix-vector bmm
            prediction = (A * theta.mT).sum(dim=-1, keepdim=True)  # (E, N, 1)
        else:
            prediction = torch.bmm(A, theta)  # (E, N, m)
        return ((prediction - self.targets) ** 2).sum(dim=(-2, -1)) * self.scale**2  # (E,)

    def backward(self, loss: torch.Tensor) -> None:
        loss.sum().backward()  # members are independent: block-diagonal gradient

    def step(self) -> None:
        self.optimizer.step()
        self._clear_grads()
        self._apply_frozen()

    def _clear_grads(self) -> None:
        for flat in self.flats:
            flat.grad = None

    def _trained_views(self, member: int) -> dict[str, torch.Tensor]:
        parts = self.flats[member].detach().split(self.sizes)
        return {name: _t(part.view(shape)) for name, shape, part in  # the model's layout
                zip(self.trained_names, self.shapes, parts, strict=True)}

    # -- state ------------------------------------------------------------------------------

    @torch.no_grad()
    def _write_heads(self) -> None:
        if self.theta is not None:
            w = self.width
            self.fixed["head.weight"].copy_(self.theta[:, :w].mT)
            self.fixed["head.bias"].copy_(self.theta[:, w])
            self.theta = None
            self._apply_frozen()

    @torch.no_grad()
    def _apply_frozen(self) -> None:
        for e, state in self.frozen.items():
            self._load_member(e, state)

    @torch.no_grad()
    def _member_state(self, e: int) -> dict[str, torch.Tensor]:
        state = {name: t[e].clone() for name, t in self.fixed.items()}
        state.update({name: view.clone() for name, view in self._trained_views(e).items()})
        return state

    @torch.no_grad()
    def _load_member(self, e: int, state: dict[str, torch.Tensor]) -> None:
        views = self._trained_views(e)
        for name, value in state.items():
            if name in self.fixed:
                self.fixed[name][e] = value
            else:
                views[name].copy_(value)

    def freeze(self, member: int) -> None:
        self._write_heads()
        self.frozen[member] = self._member_state(member)

    def snapshot(self):
        self._write_heads()
        members = [self._member_state(e) for e in range(self.n_members)]
        return members, copy.deepcopy(self.optimizer.state_dict())

    def restore(self, state) -> None:
        members, optimizer_state = state
        self.theta = None
        for e, saved in enumerate(members):
            self._load_member(e, saved)
        self.optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        self._clear_grads()
        self._apply_frozen()

    @torch.no_grad()
    def member_model(self, member: int) -> nn.Module:
        self._write_heads()
        views = self._trained_views(member)
        for name, p in self.member_params[member].items():
            p.copy_(self.fixed[name][member] if name in self.fixed else views[name])
        return self.models[member]

    @torch.no_grad()
    def write_back(self, member: int) -> None:
        self._load_member(member, self.member_params[member])

    def finish(self) -> None:
        self._write_heads()
        for e in range(self.n_members):
            self.member_model(e)

