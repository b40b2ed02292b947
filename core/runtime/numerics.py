"""Portable CPU numerics: the same floating-point results on x86-64 Linux machines with AVX2.

Why: PyTorch's own kernels, MKL (its matrix products), oneDNN (its convolutions) and NumPy (its
ufuncs: exp, sin, ...) each pick their code by the CPU's instruction set, and an AVX-512 kernel
rounds differently from an AVX2 one. Measured here (an AVX-512 machine, torch 2.14.1, numpy
2.4.6): each of the four, switched to its AVX2 kernels on its own, changed the bytes of a short
training run, and NumPy's switch alone changed the demo generator's images. The demo models
train for thousands of steps, so those last-bit differences grow into other models: the same
demo code gave seed 0 a stated-call threshold of 0.42 on one machine and 0.01 on another, and
two critical misses instead of none. The thread count matters as well (a reduction
split over more threads adds in another order).

``use_portable_numerics()`` pins every one of them to its AVX2 kernels and the intra-op threads
to one, so ``medreview demo`` and ``medreview benchmark`` build the same cases and the same demo
models run after run, and, as far as the libraries keep their AVX2 code paths bitwise alike, on
other such machines (with the same package versions). Checked on one kind of machine only (an
Intel Xeon with AVX-512); Intel's MKL documents its AVX2 branch for Intel CPUs, so an AMD one may
still differ. It costs about 15-20% of the training time on that machine
(``benchmarks/numerics.py``), more on one with many cores (one thread instead of several);
``--numerics native`` turns it off.

The libraries read these variables once, when first used, so this must run before the process
loads NumPy or torch; when either is already loaded it changes nothing and says why.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

NUMERICS_CHOICES: tuple[str, ...] = ("portable", "native")

# Each library's switch to its AVX2 code. ATen: torch's own vectorised kernels; MKL_CBWR: MKL's
# conditional numerical reproducibility on the AVX2 branch (MKL_ENABLE_INSTRUCTIONS caps the
# rest of MKL); oneDNN: convolutions and layer kernels; NumPy: only the baseline and the x86-64-v3
# (AVX2, FMA) dispatch targets; OpenBLAS (NumPy's matrix products): its Haswell kernels.
PORTABLE_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_ENABLE_CPU_FEATURES": "X86_V3",
    "OPENBLAS_CORETYPE": "Haswell",
    "MEDREVIEW_TORCH_THREADS": "1",
}
# Set by NumPy's own users only; it may not be set beside NPY_ENABLE_CPU_FEATURES.
_CLEARED = ("NPY_DISABLE_CPU_FEATURES",)
# The x86-64-v3 level NumPy's X86_V3 target needs (lzcnt is "abm" in /proc/cpuinfo).
_V3_FLAGS = frozenset({"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "abm", "movbe"})
_MARK = "MEDREVIEW_NUMERICS"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of the first CPU in ``cpuinfo`` (empty where it cannot be read:
    not Linux, or no such file)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def portable_unavailable(flags: frozenset[str] | None = None) -> str | None:
    """Why portable numerics cannot be used on this machine, or ``None`` when it can."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return (
            f"this is an {platform.machine() or 'unknown'} CPU, and portable numerics is for x86-64"
        )
    have = cpu_flags() if flags is None else flags
    if not have:
        return "this system does not say which instructions its CPU has (no /proc/cpuinfo)"
    missing = sorted(_V3_FLAGS - have)
    if missing:
        return f"this CPU lacks {', '.join(missing)} (x86-64-v3), which portable numerics pins to"
    return None


def use_portable_numerics(environ: dict[str, str] | None = None) -> str | None:
    """Pin torch, MKL, oneDNN, NumPy and OpenBLAS to their AVX2 kernels and torch to one thread,
    for the rest of this process and its children.

    Returns ``None`` when done, else one sentence saying why nothing was changed: the CPU cannot
    (``portable_unavailable``), or NumPy or torch is already loaded in this process (they have
    read their settings by then; a test process, say).
    """
    env = os.environ if environ is None else environ
    reason = portable_unavailable()
    if reason is None:
        loaded = [m for m in ("numpy", "torch") if m in sys.modules]
        if loaded:
            reason = f"{' and '.join(loaded)} was loaded before the numerics could be pinned"
    if reason is not None:
        return reason
    for name in _CLEARED:
        env.pop(name, None)
    env.update(PORTABLE_ENV)
    env[_MARK] = "portable"
    return None


def clear_portable_numerics(environ: dict[str, str] | None = None) -> None:
    """Undo an inherited ``use_portable_numerics`` (``--numerics native`` in a child of a
    portable process): drop its variables and its mark, so the card does not say portable.
    Variables the user set without the mark are left alone."""
    env = os.environ if environ is None else environ
    if env.get(_MARK) != "portable":
        return
    for name, value in PORTABLE_ENV.items():
        if env.get(name) == value:
            env.pop(name)
    env.pop(_MARK, None)


def numerics_in_effect() -> dict[str, Any]:
    """What this process computes with, for model cards and benchmark reports: ``mode``
    (``portable`` when ``use_portable_numerics`` pinned it, else ``native``), torch's CPU kernel
    level and intra-op threads, and the torch and NumPy versions (other versions give other
    bits). Imports torch."""
    import numpy
    import torch

    return {
        "mode": os.environ.get(_MARK, "native"),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "threads": int(torch.get_num_threads()),
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
    }


def describe_numerics(info: dict[str, Any]) -> str:
    """``numerics_in_effect()`` in words: ``"portable (AVX2 kernels, 1 thread; torch 2.14.1,
    numpy 2.4.6)"``."""
    threads = info.get("threads")
    return (
        f"{info.get('mode', 'native')} ({info.get('cpu_capability', '?')} kernels, "
        f"{threads} thread{'' if threads == 1 else 's'}; torch {info.get('torch', '?')}, "
        f"numpy {info.get('numpy', '?')})"
    )
