"""Where tensors live: `auto` takes a GPU when torch sees one, else the CPU."""

from __future__ import annotations

import functools
import warnings

import torch

from aecluster.errors import InputError

DEVICES = ("auto", "cpu", "cuda", "mps")


def _available(name: str) -> bool:
    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        return torch.backends.mps.is_available()
    return name == "cpu"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for `auto | cpu | cuda | mps` (or `cuda:1`); a clear error if absent."""
    if isinstance(name, torch.device):
        return name
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise InputError(f"--device {name}: expected one of {', '.join(DEVICES)}")
    if kind == "auto":
        return torch.device(next((d for d in ("cuda", "mps") if _available(d)), "cpu"))
    if not _available(kind):
        raise InputError(f"--device {name}: torch sees no {kind.upper()} device here")
    return torch.device(name)


def memory_layout(channels_last: bool) -> torch.memory_format:
    """The memory layout `train.channels_last` asks for (NHWC is faster on many CPUs)."""
    return torch.channels_last if channels_last else torch.contiguous_format


def to_device(x: torch.Tensor, device: torch.device, layout: torch.memory_format) -> torch.Tensor:
    """A batch moved to `device` in the model's memory layout (channels_last or not)."""
    return x.to(device, non_blocking=True).contiguous(memory_format=layout)


# `train.precision`: the dtype autocast runs the forward pass in (None: full float32), or "auto"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.cache  # asked by autocast at every step; the hardware does not change
def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs in hardware: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or
    AMX (oneDNN's own check). Elsewhere bf16 is emulated: the baseline trained 12x slower in bf16
    than in float32 on an AVX2 CPU (benchmarks/RESULTS.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(device: torch.device, precision: str) -> str:
    """`auto`: bf16 where the hardware has it, else fp32; other values as they are, with a
    warning when bf16 would be emulated."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device):
        warnings.warn(f"train.precision = 'bf16' on a {device.type} without bf16 in hardware is "
                      "emulated and many times slower than float32; 'auto' uses bf16 only "
                      "where it is fast", stacklevel=2)  # fmt: skip
    return precision


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """Mixed precision for one training step: bf16 on CPUs that have it (AVX512-BF16, AMX) and
    on GPUs; fp16 is for CUDA only. Weights, gradients and optimizer state stay float32."""
    dtype = PRECISIONS[resolve_precision(device, precision)]
    if dtype is torch.float16 and device.type != "cuda":
        raise InputError("train.precision = 'fp16' needs a CUDA device; use 'bf16' on a CPU")
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
