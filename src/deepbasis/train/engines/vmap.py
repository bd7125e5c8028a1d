r"""The generic ensemble engine: E basis networks on any problem, through ``torch.func.vmap``.

:func:`deepbasis.fit_ensemble` uses it for everything that is not an :class:`~deepbasis.MLP`
regression (those take :mod:`deepbasis.train.engines.stacked`), e.g. the physics-informed
:class:`~deepbasis.train.LinearProblem`. The parameters are stacked into ``(E, …)`` tensors
(``torch.func.stack_module_state``) and ``problem.rows`` is vmapped over them with
``torch.func.functional_call``; autograd then runs on the batched operations. (How close its
members come to separate runs: :mod:`deepbasis.train.ensemble`.)
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..loop import Engine
from ..lstsq import head_of, solve_head, solve_options
from ..optim import make_optimizer
from ..problem import Problem, problem_loss


class _RowsOf(nn.Module):
    """``problem.rows(model)`` as a module call, so functional_call can swap the parameters."""

    def __init__(self, model: nn.Module, problem: Problem) -> None:
        super().__init__()
        self.model = model
        object.__setattr__(self, "problem", problem)  # not a submodule, even if it is a Module

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.problem.rows(self.model)


class VmapEngine(Engine):
    def __init__(self, models, problem, method, optimizer, lr, optimizer_options, lstsq_method,
                 rcond, ridge) -> None:
        self.models = models
        self.n_members = len(models)
        head = head_of(models[0])
        self.device = head.weight.device
        self.lsgd = method == "lsgd"
        self.width = head.in_features
        self.solve = solve_options(problem, lstsq_method, rcond, ridge)
        names = {id(p): name for name, p in models[0].named_parameters()}
        self.head_weight = "model." + names[id(head.weight)]
        self.head_bias = "model." + names[id(head.bias)] if head.bias is not None else None
        params, buffers = torch.func.stack_module_state(models)  # name -> (E, ...)
        self.params = {"model." + k: v for k, v in params.items()}
        self.buffers = {"model." + k: v for k, v in buffers.items()}
        skeleton = _RowsOf(copy.deepcopy(models[0]), problem)

        def rows(p, b):
            return torch.func.functional_call(skeleton, {**p, **b}, ())

        self._rows = torch.func.vmap(rows, in_dims=(0, 0), randomness="error")
        head_names = {self.head_weight, self.head_bias}
        self.trained = [t for name, t in self.params.items() if t.requires_grad
                        and (not self.lsgd or name not in head_names)]
        if not self.trained:
            raise ValueError("the members have no trainable hidden parameters; for a "
                             "least-squares fit of the head alone use deepbasis.fit_head_")
        self.optimizer = make_optimizer(optimizer, self.trained, lr, optimizer_options)
        self.frozen: dict[int, dict[str, torch.Tensor]] = {}
        self.theta: torch.Tensor | None = None
        self.member_params = [dict(m.named_parameters()) for m in models]

    def forward(self) -> torch.Tensor:
        A, b = self._rows(self.params, self.buffers)  # (E, N, w + 1), (E, N, m)
        weight = self.params[self.head_weight]  # (E, m, w)
        bias = self.params[self.head_bias] if self.head_bias else None  # (E, m)
        if self.lsgd:
            theta = solve_head(A.detach(), b, **self.solve)  # (E, w + 1, m)
            self.theta = theta  # written into the heads when needed, as in fit
        else:
            theta = weight.mT  # (E, w, m)
            if bias is not None:
                theta = torch.cat([theta, bias[:, None, :]], dim=1)  # (E, w + 1, m)
        return problem_loss(A, b, theta)  # (E,)

    @torch.no_grad()
    def _write_heads(self) -> None:
        if self.theta is not None:
            self.params[self.head_weight].copy_(self.theta[:, :self.width].mT)
            if self.head_bias is not None:
                self.params[self.head_bias].copy_(self.theta[:, self.width])
            self.theta = None
            self._apply_frozen()

    def backward(self, loss: torch.Tensor) -> None:
        loss.sum().backward()  # members are independent: block-diagonal gradient

    def step(self) -> None:
        self.optimizer.step()
        for t in self.trained:
            t.grad = None
        self._apply_frozen()

    @torch.no_grad()
    def _apply_frozen(self) -> None:
        for e, state in self.frozen.items():
            for name, value in state.items():
                self.params[name][e] = value

    def freeze(self, member: int) -> None:
        self._write_heads()
        self.frozen[member] = {name: t[member].detach().clone()
                               for name, t in self.params.items()}

    def snapshot(self):
        self._write_heads()
        params = {name: t.detach().clone() for name, t in self.params.items()}
        return params, copy.deepcopy(self.optimizer.state_dict())

    def restore(self, state) -> None:
        params, optimizer_state = state
        self.theta = None
        with torch.no_grad():
            for name, saved in params.items():
                self.params[name].copy_(saved)
        self.optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        self.optimizer.zero_grad(set_to_none=True)
        self._apply_frozen()

    @torch.no_grad()
    def member_model(self, member: int) -> nn.Module:
        self._write_heads()
        for name, p in self.member_params[member].items():
            p.copy_(self.params["model." + name][member])
        return self.models[member]

    @torch.no_grad()
    def write_back(self, member: int) -> None:
        for name, p in self.member_params[member].items():
            self.params["model." + name][member] = p

    @torch.no_grad()
    def finish(self) -> None:
        self._write_heads()
        for e in range(self.n_members):
            state = self.frozen.get(e)
            for name, p in self.member_params[e].items():
                key = "model." + name
                p.copy_(state[key] if state is not None else self.params[key][e])
