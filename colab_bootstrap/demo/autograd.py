"""Autograd against an analytic gradient, ``gradcheck`` against finite differences, and define-by-run:
a graph that changes with the data."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .checks import require


def _default_function(x: Any) -> Any:
    return (x ** 3 - 2 * x + x * x.sin()).sum()


def _default_gradient(x: Any) -> Any:
    return 3 * x ** 2 - 2 + x.sin() + x * x.cos()


def check_autograd(device: str = "cpu", *, function: Callable[[Any], Any] | None = None,
                   gradient: Callable[[Any], Any] | None = None) -> str:
    """backward() on f(x) = sum(x^3 - 2x + x sin x) matches 3x^2 - 2 + sin x + x cos x."""
    import torch

    function, gradient = function or _default_function, gradient or _default_gradient
    x = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64, device=device, requires_grad=True)
    y = function(x)
    require(y.requires_grad and y.grad_fn is not None, "the result has no graph to differentiate")
    y.backward()
    require(x.grad is not None, "backward() left no gradient on x")
    expected = gradient(x.detach())
    error = float((x.grad - expected).abs().max())
    require(error < 1e-9, f"autograd's gradient differs from the analytic one by up to {error:.3g}")
    return f"x.grad equals the analytic derivative (max error {error:.1e}, float64)"


def _default_composite(x: Any, w: Any) -> Any:
    import torch

    return torch.tanh(x @ w).pow(2).sum(dim=1) * x[:, 0].exp()


def check_gradcheck(device: str = "cpu", *, function: Callable[..., Any] | None = None,
                    dtype: Any = None) -> str:
    """torch.autograd.gradcheck: analytic and finite-difference Jacobians agree in float64."""
    import torch

    function = function or _default_composite
    dtype = dtype or torch.float64
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    w = torch.randn(4, 2, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    inputs = (x.requires_grad_(), w.requires_grad_())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gradcheck warns about non-double inputs; the result says it
        ok = torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=False)
    require(ok, f"gradcheck failed: the analytic Jacobian differs from finite differences ({dtype})")
    return "gradcheck: analytic Jacobian of tanh(x @ w)^2 * exp(x) equals finite differences (float64)"


def data_dependent(x: Any) -> Any:
    """Control flow that depends on the values: double until |x|_1 >= 8, then branch on the sign."""
    y = x
    while y.detach().abs().sum().item() < 8.0:
        y = y * 2
    if y.detach().sum().item() > 0:
        return (y * y).sum()
    return y.sin().sum()


def data_dependent_gradient(x: Any) -> Any:
    """The analytic gradient of data_dependent, worked out by hand from the same decisions."""
    doublings = 0
    while float(x.abs().sum()) * 2 ** doublings < 8.0:
        doublings += 1
    scale = 2.0 ** doublings
    if float(x.sum()) > 0:
        return 2 * x * scale * scale
    return (x * scale).cos() * scale


def _graph_signature(output: Any) -> tuple[str, ...]:
    """The autograd nodes behind OUTPUT, in a fixed order (the graph this input built)."""
    seen: set[int] = set()
    names: list[str] = []
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names.append(type(node).__name__)
        stack.extend(child for child, _ in node.next_functions)
    return tuple(names)


def check_define_by_run(device: str = "cpu", *, function: Callable[[Any], Any] | None = None,
                        gradient: Callable[[Any], Any] | None = None) -> str:
    """A function whose control flow depends on the data builds a different graph per input."""
    import torch

    function, gradient = function or data_dependent, gradient or data_dependent_gradient
    inputs = [torch.tensor(values, dtype=torch.float64, device=device) for values in
              ([0.5, 0.25], [-3.0, 1.0])]
    signatures = []
    for x in inputs:
        x.requires_grad_()
        out = function(x)
        signatures.append(_graph_signature(out))
        out.backward()
        expected = gradient(x.detach())
        error = float((x.grad - expected).abs().max())
        require(error < 1e-9, f"the gradient for input {x.detach().tolist()} is off by {error:.3g}")
    require(signatures[0] != signatures[1], "both inputs built the same graph: the control flow ignored the data")
    return (f"two inputs built different graphs ({len(signatures[0])} and {len(signatures[1])} nodes); "
            "both gradients are right")
