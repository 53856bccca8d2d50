"""A module with its own ``nn.Parameter``, trained by ``optimizer.step()``: the loss falls, the parameters
approach the truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .checks import require


def check_parameter_training(device: str = "cpu", *, lr: float = 0.1, steps: int = 150,
                             optimizer: Callable[..., Any] | None = None,
                             as_parameter: bool = True) -> str:
    """A module with its own nn.Parameter, fitted by optimizer.step() on y = X w + b + noise."""
    import torch
    from torch import nn

    class Linear(nn.Module):
        def __init__(self, features: int) -> None:
            super().__init__()
            weight, bias = torch.zeros(features), torch.zeros(())
            # An nn.Parameter is registered (module.parameters()) and requires grad; a plain tensor is neither.
            self.weight = nn.Parameter(weight) if as_parameter else weight
            self.bias = nn.Parameter(bias) if as_parameter else bias

        def forward(self, x: Any) -> Any:
            return x @ self.weight + self.bias

    generator = torch.Generator().manual_seed(2)
    true_w, true_b = torch.tensor([2.0, -3.0, 0.5]), torch.tensor(1.0)
    x = torch.randn(256, 3, generator=generator)
    y = x @ true_w + true_b + 0.01 * torch.randn(256, generator=generator)
    x, y, true_w, true_b = x.to(device), y.to(device), true_w.to(device), true_b.to(device)
    model = Linear(3).to(device)
    params = list(model.parameters())
    require(len(params) == 2, f"the module registers {len(params)} parameters, not 2 "
                              "(only nn.Parameter attributes are registered)")
    require(all(p.requires_grad for p in params), "a parameter does not require grad")
    make = optimizer or torch.optim.SGD
    opt = make(params, lr=lr)
    loss_fn = nn.MSELoss()
    first = last = float("nan")
    for step in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if step == 0:
            first = loss.item()
        last = loss.item()
    drop = 1 - last / first if first > 0 else 0.0
    require(math.isfinite(last), f"the loss diverged ({first:.3g} -> {last:.3g}): the step size is too large")
    require(drop >= 0.9,
            f"the loss fell only {drop:.0%} ({first:.3g} -> {last:.3g}); it should fall by at least 90%")
    w_error = float((model.weight.detach() - true_w).abs().max())
    b_error = abs(float(model.bias.detach() - true_b))
    require(w_error < 0.05 and b_error < 0.05,
            f"the parameters did not approach the true ones (errors {w_error:.3g}, {b_error:.3g})")
    taken = f"{steps:,} {'step' if steps == 1 else 'steps'}"  # the package is self-contained: no units.count
    return (f"loss {first:.3g} -> {last:.2g} (down {math.floor(drop * 10000) / 100:g}%) in {taken}; "
            f"w, b within {max(w_error, b_error):.1g} of the truth")
