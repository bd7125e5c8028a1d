"""The engine for one basis network on any problem: ``problem.rows(model)`` each iteration."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..loop import Engine, trained_parameters
from ..lstsq import head_of, set_head_, solve_head, solve_options
from ..optim import make_optimizer
from ..problem import Problem, head_parameters, problem_loss


class SingleEngine(Engine):
    def __init__(self, model: nn.Module, problem: Problem, method: str, optimizer: str, lr: float,
                 optimizer_options, lstsq_method: str, rcond, ridge: float) -> None:
        self.model, self.problem, self.lsgd = model, problem, method == "lsgd"
        self.head = head_of(model)
        self.n_members = 1
        self.device = self.head.weight.device
        self.solve = solve_options(problem, lstsq_method, rcond, ridge)
        self.params = [p for p in model.parameters()]
        self.trained = trained_parameters(model, self.head, method)
        self.optimizer = make_optimizer(optimizer, self.trained, lr, optimizer_options)
        # LSGD's head is a function of the hidden parameters, recomputed every iteration; it is
        # written into the model only when someone looks (callbacks, metrics, snapshots, the
        # end), which saves two copies per iteration.
        self.theta: torch.Tensor | None = None
        self.frozen = False

    def forward(self) -> torch.Tensor:
        A, b = self.problem.rows(self.model)  # (N, w + 1), (N, m)
        if self.lsgd:
            theta = solve_head(A.detach(), b, **self.solve)  # (w + 1, m)
            self.theta = None if self.frozen else theta
        else:
            theta = head_parameters(self.head)  # (w + 1, m)
        return problem_loss(A, b, theta).reshape(1)  # (1,)

    def _write_head(self) -> None:
        if self.theta is not None:
            set_head_(self.head, self.theta)
            self.theta = None

    def backward(self, loss: torch.Tensor) -> None:
        loss.sum().backward()

    def step(self) -> None:
        self.optimizer.step()
        for p in self.trained:  # what zero_grad(set_to_none=True) does, without its profiler hooks
            p.grad = None

    def snapshot(self):
        self._write_head()
        with torch.no_grad():
            params = [p.detach().clone() for p in self.params]
        return params, copy.deepcopy(self.optimizer.state_dict())

    def restore(self, state) -> None:
        params, optimizer_state = state
        self.theta = None
        with torch.no_grad():
            for p, saved in zip(self.params, params, strict=True):
                p.copy_(saved)
        self.optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        for p in self.trained:
            p.grad = None

    def freeze(self, member: int) -> None:
        self._write_head()
        self.frozen = True

    def member_model(self, member: int) -> nn.Module:
        self._write_head()
        return self.model

    def finish(self) -> None:
        self._write_head()

