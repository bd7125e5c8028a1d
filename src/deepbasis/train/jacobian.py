r"""Residual rows of a training problem and their Jacobian with respect to the hidden parameters.

Second-order training (:mod:`deepbasis.train.lm`) needs, at the hidden parameters ξ, the design
rows ``A(ξ)`` and targets ``b`` of the problem (:mod:`deepbasis.train.problem`) and the Jacobian

.. math::
    J_{(i, j), p} = \frac{∂\,(A(ξ)\,θ)_{ij}}{∂ξ_p}  \qquad (θ \text{ held fixed}),

one row per residual entry (row i of A, output j), one column per hidden parameter. Two ways:

**Taylor streams for an** :class:`~deepbasis.MLP` **(fast).** A term's rows need the basis and
some of its input derivatives, e.g. Φ, ∂₀₀Φ and ∂₁₁Φ for a Laplacian. Instead of nesting
automatic differentiation (a Jacobian of a Hessian), every hidden layer propagates *streams*:
the pre-activation ``z`` and its input derivatives ``∂^β z`` for every multi-index β the operator
needs (and their sub-multi-indices). A linear layer maps each stream by its weight (the bias
enters the value stream only); the activation maps them by the multivariate Faà di Bruno formula

.. math::
    ∂^α σ(z) = \sum_{π \in Π(α)} σ^{(|π|)}(z) \prod_{B \in π} ∂^{α_B} z,

a sum over the set partitions π of α's positions (2 for a second derivative, 5 for a third).
Then one backward pass per output, with a cotangent of ones over all rows, gives every row's
derivative with respect to every layer's pre-activation streams ``G_{l,β}`` at once — exact
because the network acts row by row, so row i of the output depends only on row i of each
stream. Row i's derivative with respect to layer l's weight is the sum of outer products
:math:`\sum_β G_{l,β}[i] \otimes a_{l−1,β}[i]` of those cotangents with the layer's input
streams, and with respect to its bias :math:`G_{l,()}[i]`. Measured on the 2-D Poisson PINN
(``MLP(2, 32, 3, "tanh")``, 2,601 interior and 204 boundary rows, 2,208 hidden parameters, one
core, float64): the whole 2,805 × 2,208 Jacobian in about 0.05 s, against 1.3 s for
``vmap(jacrev(...))`` of a hand-written Taylor forward and ~60 s for ``jacrev`` of a vmapped
Hessian (``python benchmarks/bench_pde.py --jacobian``).

**Any other basis network or problem (general).** ``torch.func.jacrev`` (fewer rows than
parameters) or ``jacfwd`` (otherwise) of ``problem.rows`` through ``functional_call``. Correct
for anything :func:`deepbasis.fit` trains, but one to two orders of magnitude slower on operator
rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import combinations

import torch
from torch import nn

from .engines.vmap import _RowsOf
from .operators import LinearProblem
from .problem import Regression

Index = tuple[int, ...]


class ResidualRows:
    """A problem evaluated at hidden parameters given as one flat vector ξ.

    Attributes:
        names: the hidden parameters' names in ``model.named_parameters()`` order, the order
            of ξ's entries and of the Jacobian's columns.
        size: P, the number of hidden parameters.
        rows: the number of design rows R (the residual has R · m entries).
        fast: whether the Taylor-stream Jacobian is used (an MLP on a Regression or a
            LinearProblem) or the general ``torch.func`` one.
    """

    def __init__(self, model: nn.Module, problem) -> None:
        self.model = model
        self.problem = problem
        head = model.head
        head_ids = {id(p) for p in head.parameters()}
        named = [(n, p) for n, p in model.named_parameters() if id(p) not in head_ids]
        self.names = [n for n, p in named if p.requires_grad]
        if not self.names:
            raise ValueError(
                f"{type(model).__name__} has no trainable hidden parameters (requires_grad="
                "True); for a least-squares fit of the head alone use deepbasis.fit_head_")
        params = dict(named)
        self.shapes = [params[n].shape for n in self.names]
        self.size = sum(math.prod(s) for s in self.shapes)
        self.outputs = head.out_features
        self.bias = head.bias is not None
        # the Taylor streams differentiate every hidden parameter; a frozen one needs torch.func
        self._terms = _fast_terms(model, problem) if len(self.names) == len(named) else None
        self.fast = self._terms is not None
        if self.fast:
            self.rows = sum(t.points.shape[0] for t in self._terms)
        else:
            with torch.no_grad():
                self.rows = problem.rows(model)[0].shape[-2]
            self._skeleton = _RowsOf(model, problem)

    # -- parameters ------------------------------------------------------------------------

    def pack(self) -> torch.Tensor:
        """The model's current hidden parameters as one flat vector ξ (a detached copy)."""
        params = dict(self.model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names]).clone()

    def unpack(self, xi: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for shape in self.shapes:
            n = math.prod(shape)
            out.append(xi[start:start + n].view(shape))
            start += n
        return out

    @torch.no_grad()
    def write(self, xi: torch.Tensor) -> None:
        """Copy ξ into the model's hidden parameters."""
        params = dict(self.model.named_parameters())
        for name, value in zip(self.names, self.unpack(xi), strict=True):
            params[name].copy_(value)

    # -- rows and Jacobian -----------------------------------------------------------------

    def design(self, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``A(ξ) (R, w [+ 1])`` and ``b (R, m)``, without a graph."""
        with torch.no_grad():
            if self.fast:
                blocks = [term.rows(self.unpack(xi)) for term in self._terms]
                return torch.cat([a for a, _ in blocks]), torch.cat([b for _, b in blocks])
            return torch.func.functional_call(self._skeleton, self._params(xi), ())

    def jacobian(self, xi: torch.Tensor, theta: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``A (R, w [+ 1])``, ``b (R, m)`` and ``J (m · R, P)``: ∂ vec(A(ξ) θ) / ∂ξ.

        Rows are ordered output by output (all R rows of output 0, then output 1, ...), as in
        ``(A θ − b).mT.reshape(-1)``.
        """
        if self.fast:
            blocks = [term.jacobian(self.unpack(xi), theta) for term in self._terms]
            A = torch.cat([a for a, _, _ in blocks])
            b = torch.cat([b for _, b, _ in blocks])
            J = torch.cat([j for _, _, j in blocks], dim=1)  # (m, R, P)
            return A, b, J.reshape(-1, self.size)
        A, b = self.design(xi)

        def output(flat: torch.Tensor) -> torch.Tensor:
            A_of, _ = torch.func.functional_call(self._skeleton, self._params(flat), ())
            return (A_of @ theta).mT.reshape(-1)  # (m · R,)

        transform = torch.func.jacrev if A.shape[0] * self.outputs < self.size else \
            torch.func.jacfwd
        J = transform(output)(xi.detach())  # (m · R, P)
        return A, b, J

    def _params(self, xi: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"model." + n: v for n, v in zip(self.names, self.unpack(xi), strict=True)}


# -- the fast path: Taylor streams through an MLP ------------------------------------------


class _StreamTerm:
    """One term's rows ``scale · [Σ_p c_p ∂^{α_p} Φ, Σ_{α_p = ()} c_p]`` on an MLP."""

    def __init__(self, model, points, parts, scale, target) -> None:
        self.model = model
        self.points = points  # (N, d), in the model's dtype and device
        self.parts = parts  # [(coefficient (N, 1), index)]
        self.scale = scale
        self.target = target  # (N, m)
        wanted = {index for _, index in parts}
        self.indices = sorted(_closure(wanted), key=lambda i: (len(i), i))
        self.partitions = {index: _partitions(index) for index in self.indices}
        self.order = max(len(i) for i in self.indices)
        constant = [c for c, index in parts if not index]
        self.constant = sum(constant[1:], constant[0]) if constant else None

    def _inputs(self) -> dict[Index, torch.Tensor]:
        model, x = self.model, self.points
        streams = {(): model.normalize(x)}
        for index in self.indices:
            if len(index) == 1:
                (c,) = index
                e = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
                e[c] = 1.0
                if model.domain is not None:  # the chain-rule factor of the input map
                    e = e / (model._upper - model._lower)
                streams[index] = e.expand(x.shape)
        return streams  # higher derivatives of the (affine) input map vanish: absent

    def _forward(self, params: Sequence[torch.Tensor], record: bool):
        """Feature streams ``{β: ∂^β Φ}``; with ``record``, each layer's (inputs, z streams)."""
        model = self.model
        h = self._inputs()
        layers = []
        for k in range(len(params) // 2):
            W, bias = params[2 * k], params[2 * k + 1]
            z = {beta: a @ W.mT for beta, a in h.items()}  # (N, w) each
            z[()] = z[()] + bias
            if record:
                for t in z.values():
                    if not t.requires_grad:
                        t.requires_grad_()
                layers.append((h, z))
            out = _activate(model.activation, z, self.indices, self.partitions, self.order)
            if model.residual and k > 0:
                out = {beta: h.get(beta, 0) + v for beta, v in out.items()}
            h = out
        return h, layers

    def _combine(self, h: dict[Index, torch.Tensor]) -> torch.Tensor:
        basis = None
        for c, index in self.parts:
            value = h.get(index)
            if value is None:
                continue
            term = c * value  # (N, 1) * (N, w)
            basis = term if basis is None else basis + term
        if basis is None:
            n, w = self.points.shape[0], self.model.width
            basis = torch.zeros(n, w, dtype=self.points.dtype, device=self.points.device)
        if self.model.head.bias is None:
            return basis * self.scale
        constant = self.constant if self.constant is not None else basis.new_zeros(
            basis.shape[0], 1)
        return torch.cat([basis, constant], dim=1) * self.scale  # (N, w + 1)

    def rows(self, params: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, _ = self._forward(params, record=False)
        return self._combine(h), self.target * self.scale

    def jacobian(self, params: Sequence[torch.Tensor], theta: torch.Tensor):
        params = [p.detach() for p in params]
        with torch.enable_grad():
            h, layers = self._forward(params, record=True)
            A = self._combine(h)  # (N, w + 1)
            out = A @ theta  # (N, m)
            cotangents = [z for _, z in layers for z in z.values()]
            per_output = []
            for j in range(out.shape[1]):
                grads = torch.autograd.grad(out[:, j], cotangents,
                                            torch.ones_like(out[:, j]),
                                            retain_graph=j + 1 < out.shape[1],
                                            allow_unused=True)
                with torch.no_grad():
                    per_output.append(self._columns(layers, grads))  # (N, P)
        J = torch.stack(per_output)  # (m, N, P)
        return A.detach(), self.target * self.scale, J

    @staticmethod
    def _columns(layers, grads) -> torch.Tensor:
        columns, k = [], 0
        for inputs, z in layers:
            n = next(iter(z.values())).shape[0]
            weight = None
            bias = None
            for beta in z:
                g = grads[k]
                k += 1
                if g is None:
                    continue
                outer = g[:, :, None] * inputs[beta][:, None, :]  # (N, out, in)
                weight = outer if weight is None else weight + outer
                if beta == ():
                    bias = g
            fan_out, fan_in = next(iter(z.values())).shape[1], inputs[()].shape[1]
            if weight is None:
                weight = inputs[()].new_zeros(n, fan_out, fan_in)
            if bias is None:
                bias = inputs[()].new_zeros(n, fan_out)
            columns += [weight.reshape(n, -1), bias]
        return torch.cat(columns, dim=1)


def _activate(activation: nn.Module, z: dict[Index, torch.Tensor], indices: list[Index],
              partitions: dict[Index, list], order: int) -> dict[Index, torch.Tensor]:
    """``{α: ∂^α σ(z)}`` for every α in ``indices`` (Faà di Bruno); absent streams are zero."""
    derivative = activation_derivatives(activation, z[()], order)  # [σ, σ', σ'', ...]
    out: dict[Index, torch.Tensor] = {(): derivative[0]}
    for alpha in indices:
        if not alpha:
            continue
        total = None
        for blocks in partitions[alpha]:
            factors = [z.get(block) for block in blocks]
            if any(f is None for f in factors):
                continue
            product = derivative[len(blocks)]
            for f in factors:
                product = product * f
            total = product if total is None else total + product
        if total is not None:
            out[alpha] = total
    return out


def activation_derivatives(activation: nn.Module, z: torch.Tensor, order: int
                           ) -> list[torch.Tensor]:
    """``[σ(z), σ'(z), …, σ^{(order)}(z)]`` of an elementwise activation module.

    Closed forms for tanh, sin, ReLU, sigmoid and the identity; any other elementwise module by
    nested forward-mode derivatives along a tangent of ones.
    """
    name = type(activation).__name__
    if name == "Tanh":  # t' = 1 − t²
        return _derivatives_of_riccati(torch.tanh(z), (1.0, 0.0, -1.0), order)
    if name == "Sigmoid":  # s' = s − s²
        return _derivatives_of_riccati(torch.sigmoid(z), (0.0, 1.0, -1.0), order)
    if name == "Sine":
        s, c = torch.sin(z), torch.cos(z)
        cycle = [s, c, -s, -c]
        return [cycle[k % 4] for k in range(order + 1)]
    if name == "ReLU":
        step = (z > 0).to(z.dtype)
        return [torch.relu(z)] + [step] + [torch.zeros_like(z)] * max(order - 1, 0)
    if name == "Identity":
        return [z] + [torch.ones_like(z)] + [torch.zeros_like(z)] * max(order - 1, 0)
    out = [activation(z)]
    fn: Callable[[torch.Tensor], torch.Tensor] = activation
    for _ in range(order):
        fn = _elementwise_derivative(fn)
        out.append(fn(z))
    return out


def _derivatives_of_riccati(u: torch.Tensor, q: tuple[float, ...], order: int
                            ) -> list[torch.Tensor]:
    """``[u, u', …, u^{(order)}]`` of a function with u' = q(u), q a polynomial (coefficients
    by rising power): every derivative is a polynomial p(u), and (p(u))' = p'(u) q(u)."""
    out = [u]
    p = [0.0, 1.0]  # p(u) = u
    for _ in range(order):
        dp = [k * a for k, a in enumerate(p)][1:]  # p'
        product = [0.0] * (len(dp) + len(q) - 1)
        for i, a in enumerate(dp):
            for j, b in enumerate(q):
                product[i + j] += a * b
        p = product
        value = torch.zeros_like(u)
        for a in reversed(p):  # Horner
            value = value * u + a
        out.append(value)
    return out


def _elementwise_derivative(fn: Callable) -> Callable:
    def derivative(z: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(fn, (z,), (torch.ones_like(z),))[1]

    return derivative


def _closure(indices) -> set[Index]:
    """Every sub-multi-index of every index (the streams Faà di Bruno needs), with ()."""
    out: set[Index] = {()}
    for index in indices:
        for r in range(1, len(index) + 1):
            out.update(tuple(sorted(c)) for c in combinations(index, r))
    return out


def _partitions(index: Index) -> list[list[Index]]:
    """The set partitions of ``index``'s positions, each block as a sorted sub-index."""
    def split(items: list[int]):
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for partition in split(rest):
            yield [[first], *partition]
            for k in range(len(partition)):
                yield partition[:k] + [[first, *partition[k]]] + partition[k + 1:]

    return [[tuple(sorted(index[p] for p in block)) for block in partition]
            for partition in split(list(range(len(index))))]


def _fast_terms(model: nn.Module, problem) -> list[_StreamTerm] | None:
    """The problem as Taylor-stream terms when ``model`` is a deepbasis MLP; else None."""
    from ..nn.mlp import MLP

    if type(model) is not MLP:
        return None
    head = model.head
    dtype, device = head.weight.dtype, head.weight.device
    m = head.out_features
    if type(problem) is Regression:
        x = problem.x.to(dtype=dtype, device=device)
        one = torch.ones(x.shape[0], 1, dtype=dtype, device=device)
        return [_StreamTerm(model, x, [(one, ())], problem._scale,
                            problem.y.to(dtype=dtype, device=device))]
    if type(problem) is LinearProblem:
        terms = []
        for term in problem.terms:
            x, coefficients, target = term._data(dtype, device)
            parts = [(c, p.index) for p, c in zip(term.operator.parts, coefficients,
                                                  strict=True)]
            terms.append(_StreamTerm(model, x, parts, term.scale, term._target_for(target, m)))
        return terms
    return None


__all__ = ["ResidualRows", "activation_derivatives"]
