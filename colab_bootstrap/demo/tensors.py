"""Tensors and where they live: CPU <-> GPU copies, and ``view`` vs ``reshape`` (shared storage or a copy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .checks import CheckFailed, Skipped, require


def _storage(tensor: Any) -> int:
    return int(tensor.untyped_storage().data_ptr())


def check_devices(device: str = "cuda", *, copy: Callable[[Any, Any], Any] | None = None) -> str:
    """A tensor made on the CPU, copied to DEVICE and back, is equal; mixing devices raises."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise Skipped("no CUDA GPU: CPU<->GPU copies not tried")
    copy = copy or (lambda tensor, where: tensor.to(where))
    target = torch.device(device)
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    on_device = copy(x, target)
    require(on_device.device.type == target.type,
            f"the copy landed on {on_device.device}, not on {target}")
    back = copy(on_device, torch.device("cpu"))
    require(back.device.type == "cpu", f"the copy back landed on {back.device}, not on the CPU")
    require(torch.equal(back, x), "CPU -> device -> CPU changed the values")
    try:
        x + on_device
    except RuntimeError:
        pass
    else:
        raise CheckFailed(f"adding a CPU tensor to a tensor on {on_device.device} did not raise")
    return f"CPU -> {on_device.device} -> CPU equal; mixing CPU and {target.type} tensors raises RuntimeError"


def check_view_reshape(device: str = "cpu", *, view: Callable[[Any, Sequence[int]], Any] | None = None,
                       reshape: Callable[[Any, Sequence[int]], Any] | None = None) -> str:
    """Contiguous: view and reshape share storage. After transpose: view raises, reshape copies."""
    import torch

    view = view or (lambda tensor, shape: tensor.view(*shape))
    reshape = reshape or (lambda tensor, shape: tensor.reshape(*shape))
    x = torch.arange(24, dtype=torch.float32, device=device).reshape(2, 3, 4)
    require(x.is_contiguous(), "a fresh tensor is not contiguous")
    v, r = view(x, (6, 4)), reshape(x, (6, 4))
    require(tuple(v.shape) == (6, 4) and tuple(r.shape) == (6, 4), "view/reshape gave the wrong shape")
    require(_storage(v) == _storage(x), "view of a contiguous tensor does not share its storage")
    require(_storage(r) == _storage(x), "reshape of a contiguous tensor copied it (it should be a view)")
    t = x.transpose(1, 2)
    require(not t.is_contiguous() and _storage(t) == _storage(x),
            "transpose should be a non-contiguous view of the same storage")
    try:
        view(t, (2, 12))
    except RuntimeError:
        pass
    else:
        raise CheckFailed("view of a transposed (non-contiguous) tensor did not raise")
    copied = reshape(t, (2, 12))
    require(tuple(copied.shape) == (2, 12), f"reshape gave shape {tuple(copied.shape)}, not (2, 12)")
    require(_storage(copied) != _storage(x), "reshape of a transposed tensor shares storage (no copy)")
    require(torch.equal(copied, t.contiguous().view(2, 12)), "reshape of a transposed tensor has wrong values")
    copied.zero_()
    require(bool(x.abs().sum() > 0), "writing into reshape's copy changed the original")
    return "contiguous: view and reshape share storage; after transpose view raises, reshape copies"
