"""``mm`` vs ``matmul``: 2-D products only, or batched with broadcasting (and equal to ``bmm``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .checks import CheckFailed, require


def check_mm_matmul(device: str = "cpu", *, mm: Callable[[Any, Any], Any] | None = None,
                    matmul: Callable[[Any, Any], Any] | None = None,
                    bmm: Callable[[Any, Any], Any] | None = None) -> str:
    """mm rejects batched 3-D input; matmul broadcasts (B,n,m) @ (m,p) and equals bmm."""
    import torch

    mm, matmul, bmm = mm or torch.mm, matmul or torch.matmul, bmm or torch.bmm
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, 4, generator=generator, dtype=torch.float64).to(device)
    w = torch.randn(4, 2, generator=generator, dtype=torch.float64).to(device)
    try:
        mm(a, w)
    except RuntimeError:
        pass
    else:
        raise CheckFailed("mm accepted a batched 3-D tensor (it takes 2-D matrices only)")
    out = matmul(a, w)
    require(tuple(out.shape) == (5, 3, 2), f"matmul (5,3,4) @ (4,2) gave {tuple(out.shape)}, not (5, 3, 2)")
    expected = bmm(a, w.expand(5, 4, 2))
    require(torch.allclose(out, expected, rtol=1e-10, atol=1e-12),
            "matmul with a broadcast operand differs from bmm with the operand expanded")
    require(torch.allclose(out[2], mm(a[2], w), rtol=1e-10, atol=1e-12), "matmul's batch 2 differs from mm")
    return "mm rejects (5,3,4); matmul broadcasts (5,3,4) @ (4,2) -> (5,3,2), equal to bmm"
