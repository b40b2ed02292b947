"""Where models run and in which precision: cuda, then mps, then cpu, unless the user says.

Dtype by device: bfloat16 on CUDA when the GPU supports it (Ampere and later), else float16;
on Apple MPS float16 when the torch build can run it (macOS 14+ with a recent torch; matmuls in
half precision are supported there) and float32 otherwise, because bfloat16 on MPS is partial and
slower; float32 on the CPU, where half precision is slow and lossy. MPS needs
``PYTORCH_ENABLE_MPS_FALLBACK=1`` set before torch is imported so that operators MPS lacks fall
back to the CPU instead of failing; ``select_device`` sets it when it may pick MPS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")


class DeviceUnavailable(RuntimeError):
    """The device asked for is not present on this machine."""


@dataclass(frozen=True)
class DeviceChoice:
    """A device and its compute dtype, both as text (``"cuda"``, ``"bfloat16"``)."""

    device: str
    dtype: str

    def describe(self) -> str:
        """What users see: ``"cpu (float32)"``."""
        return f"{self.device} ({self.dtype})"

    @property
    def torch_dtype(self) -> Any:
        """The ``torch.dtype`` object (imports torch)."""
        import torch

        return getattr(torch, self.dtype)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported())


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _mps_fp16() -> bool:
    """Whether float16 matmuls run on this MPS device (they do from macOS 14 with torch >= 2.1)."""
    import torch

    try:
        a = torch.ones(2, 2, dtype=torch.float16, device="mps")
        return bool(torch.isfinite(a @ a).all().item())
    except (RuntimeError, TypeError):
        return False


def dtype_for(device: str) -> str:
    """The compute dtype for ``device`` (see the module docstring)."""
    if device == "cuda":
        return "bfloat16" if _cuda_bf16() else "float16"
    if device == "mps":
        return "float16" if _mps_fp16() else "float32"
    if device == "cpu":
        return "float32"
    raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICE_CHOICES)}")


def select_device(preference: str = "auto", dtype: str | None = None) -> DeviceChoice:
    """Choose the device: ``auto`` takes cuda, then mps, then cpu.

    Args:
        preference: ``auto`` | ``cuda`` | ``mps`` | ``cpu`` (a ``cuda:1`` index is kept).
        dtype: force a dtype (``float32``, ``float16``, ``bfloat16``); default by device.

    Raises:
        ValueError: an unknown preference or dtype.
        DeviceUnavailable: ``cuda`` or ``mps`` asked for but not present.
    """
    pref = (preference or "auto").strip().lower()
    base = pref.split(":", 1)[0]
    if base not in DEVICE_CHOICES:
        raise ValueError(
            f"unknown device {preference!r}; expected one of {', '.join(DEVICE_CHOICES)}"
        )
    if dtype is not None and dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"unknown dtype {dtype!r}; expected float32, float16 or bfloat16")
    if base in ("auto", "mps"):
        # Must precede the first torch import to take effect.
        os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    if base == "auto":
        if _cuda_available():
            pref = base = "cuda"
        elif _mps_available():
            pref = base = "mps"
        else:
            pref = base = "cpu"
    elif base == "cuda" and not _cuda_available():
        raise DeviceUnavailable("device 'cuda' was asked for, but torch sees no CUDA GPU here")
    elif base == "mps" and not _mps_available():
        raise DeviceUnavailable(
            "device 'mps' was asked for, but this torch build has no usable MPS"
        )
    return DeviceChoice(pref, dtype or dtype_for(base))


_threads_configured = False


def cpu_threads() -> int:
    """Intra-op threads for CPU work: ``$MEDREVIEW_TORCH_THREADS``, ``$OMP_NUM_THREADS``, else
    half the logical CPUs (the physical cores on a hyper-threaded machine), at least 1.

    Why not torch's default (all logical CPUs): on a small or busy machine its spinning worker
    threads oversubscribe the cores; measured here (2 cores shared with other jobs) a tiny model's
    forward pass took 40x longer with 2 threads than with 1.
    """
    for var in ("MEDREVIEW_TORCH_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, (os.cpu_count() or 2) // 2)


def configure_threads() -> int:
    """Set torch's intra-op threads to ``cpu_threads()`` once per process; returns the count."""
    global _threads_configured
    import torch

    if not _threads_configured:
        torch.set_num_threads(cpu_threads())
        _threads_configured = True
    return int(torch.get_num_threads())


def describe(preference: str = "auto") -> str:
    """``select_device(preference).describe()``, e.g. ``"cpu (float32)"``."""
    return select_device(preference).describe()
