"""Portable numerics: what it sets, when it refuses, and that a small real demo build comes out
bit for bit the same, run after run, and the recorded bytes on the kind of machine they were
recorded on (another CPU reports whether it matches them).

The pinning must happen before NumPy and torch load, and this test process has both loaded, so
the checks that need it run in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.runtime import numerics
from core.runtime.numerics import (
    PORTABLE_ENV,
    clear_portable_numerics,
    cpu_flags,
    describe_numerics,
    portable_unavailable,
    use_portable_numerics,
)

ROOT = Path(__file__).resolve().parents[3]
V3 = "fpu sse sse2 avx avx2 fma bmi1 bmi2 f16c abm movbe"

# A tiny demo build through the real code: the phantom renderer (NumPy), then both demo models
# (torch: the CLIP's convolutions, the LM's matrix products and AdamW), hashed.
MINI_BUILD = """
import hashlib, json, sys, tempfile
from pathlib import Path
from core.runtime.numerics import use_portable_numerics
reason = use_portable_numerics()
from core.demo import generate_demo
from core.demo.train_models import DemoTrainConfig, train_demo_models
from core.runtime.numerics import numerics_in_effect
root = Path(tempfile.mkdtemp())
cases = generate_demo(root, seed=5, n_cases=60)
def digest(paths):
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]
out = {"reason": reason, "images": digest((root / "images").glob("*.png"))}
cfg = DemoTrainConfig(seed=5, clip_steps=20, lm_steps=20, eval_every=10, lm_restarts=1,
                      clip_batch=16)
train_demo_models(cases, root / "models", config=cfg, image_root=str(root))
for name in ("demo-v1", "demo-v2"):
    out[name] = digest((root / "models" / name).rglob("*.safetensors"))
out["numerics"] = numerics_in_effect()
print(json.dumps(out))
"""

# MINI_BUILD's digests under portable numerics, recorded on an AVX-512 machine (GenuineIntel,
# "Intel(R) Xeon(R) Processor", family 6 model 167, 2 cores) for these package versions.
RECORDED_ON = ("GenuineIntel", "6", "167")
GOLDEN = {
    ("2.14.1+cu130", "2.4.6"): {
        "images": "87f97d96e71fe0ec",
        "demo-v1": "7d92d5025fa2d3bc",
        "demo-v2": "25737e0751bc9e58",
    },
}


def _fresh_python(code: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    env.pop("MEDREVIEW_NUMERICS", None)
    env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu() -> tuple[str, str, str]:
    """(vendor, family, model) of this machine's first CPU, from /proc/cpuinfo."""
    got = {"vendor_id": "", "cpu family": "", "model": ""}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in got and not got[key.strip()]:
            got[key.strip()] = value.strip()
    return got["vendor_id"], got["cpu family"], got["model"]


def test_cpu_flags_read_the_first_cpu(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        f"processor\t: 0\nflags\t\t: {V3} avx512f\n\nprocessor\t: 1\nflags\t\t: fpu\n",
        encoding="utf-8",
    )
    assert {"avx2", "avx512f", "abm"} <= cpu_flags(info)
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_unavailable_says_why_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numerics.platform, "machine", lambda: "x86_64")
    assert portable_unavailable(frozenset(V3.split())) is None
    old = portable_unavailable(frozenset("fpu sse sse2 avx".split()))
    assert old is not None and "lacks" in old and "avx2" in old and "fma" in old
    assert "does not say" in str(portable_unavailable(frozenset()))
    monkeypatch.setattr(numerics.platform, "machine", lambda: "arm64")
    assert portable_unavailable(frozenset(V3.split())) == (
        "this is an arm64 CPU, and portable numerics is for x86-64"
    )


def test_nothing_changes_once_numpy_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy  # noqa: F401 (loaded, as in this test process anyway)

    monkeypatch.setattr(numerics, "portable_unavailable", lambda: None)
    env = {"NPY_DISABLE_CPU_FEATURES": "AVX512F"}
    reason = use_portable_numerics(env)
    assert reason is not None and "numpy" in reason and "loaded before" in reason
    assert env == {"NPY_DISABLE_CPU_FEATURES": "AVX512F"}


def test_pinning_sets_every_library_and_clears_numpys_opposite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(numerics, "portable_unavailable", lambda: None)
    monkeypatch.setattr(numerics.sys, "modules", {})
    env = {"NPY_DISABLE_CPU_FEATURES": "AVX512F", "OMP_NUM_THREADS": "8"}
    assert use_portable_numerics(env) is None
    assert "NPY_DISABLE_CPU_FEATURES" not in env  # NumPy refuses both set at once
    assert {k: env[k] for k in PORTABLE_ENV} == PORTABLE_ENV
    assert env["MEDREVIEW_NUMERICS"] == "portable" and env["OMP_NUM_THREADS"] == "8"


def test_describe_in_words() -> None:
    info = {"mode": "portable", "cpu_capability": "AVX2", "threads": 1, "torch": "2.14.1",
            "numpy": "2.4.6"}  # fmt: skip
    assert describe_numerics(info) == (
        "portable (AVX2 kernels, 1 thread; torch 2.14.1, numpy 2.4.6)"
    )
    assert "4 threads" in describe_numerics({**info, "threads": 4})


@pytest.mark.skipif(portable_unavailable() is not None, reason="needs an x86-64 CPU with AVX2")
def test_a_fresh_process_runs_every_library_on_avx2_and_one_thread() -> None:
    got = _fresh_python(
        "import contextlib, io, json\n"
        "from core.runtime.numerics import use_portable_numerics\n"
        "reason = use_portable_numerics()\n"
        "import numpy, torch\n"
        "from core.runtime.devices import configure_threads\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    numpy.show_runtime()\n"
        "print(json.dumps({'reason': reason, 'aten': torch.backends.cpu.get_cpu_capability(),\n"
        "    'threads': configure_threads(), 'numpy': buf.getvalue()}))\n"
    )
    assert got["reason"] is None
    assert got["aten"] == "AVX2" and got["threads"] == 1
    found = got["numpy"].split("'found':")[1].split("]")[0]
    assert "X86_V4" not in found and "AVX512" not in found
    assert "'architecture': 'Haswell'" in got["numpy"]


def test_clearing_undoes_only_an_inherited_pin() -> None:
    env = {**PORTABLE_ENV, "MEDREVIEW_NUMERICS": "portable", "OMP_NUM_THREADS": "8"}
    env["MEDREVIEW_TORCH_THREADS"] = "3"  # changed after the pin: the user's, kept
    clear_portable_numerics(env)
    assert env == {"OMP_NUM_THREADS": "8", "MEDREVIEW_TORCH_THREADS": "3"}
    mine = {"ATEN_CPU_CAPABILITY": "avx2"}  # set by the user, no mark: left alone
    clear_portable_numerics(mine)
    assert mine == {"ATEN_CPU_CAPABILITY": "avx2"}


@pytest.mark.skipif(portable_unavailable() is not None, reason="needs an x86-64 CPU with AVX2")
def test_a_demo_build_is_the_same_bytes_every_time() -> None:
    first, second = _fresh_python(MINI_BUILD), _fresh_python(MINI_BUILD)
    assert first["reason"] is None and first["numerics"]["mode"] == "portable"
    digests = {k: first[k] for k in ("images", "demo-v1", "demo-v2")}
    assert {k: second[k] for k in digests} == digests
    versions = (first["numerics"]["torch"], first["numerics"]["numpy"])
    golden = GOLDEN.get(versions)
    if golden is None:
        return  # other package versions compute other bits; repeating itself is what is asked
    if _cpu() == RECORDED_ON:
        # The machine kind the digests were recorded on: a change that alters the demo build's
        # bytes (and so the documented figures) fails here until they are measured again.
        assert digests == golden
    elif digests != golden:
        # Another CPU: whether it computes the recorded bytes is what this reports; MKL promises
        # its AVX2 branch only on Intel CPUs, and oneDNN promises no bitwise equality at all.
        pytest.skip(f"this CPU {_cpu()} builds other bytes than the recorded {RECORDED_ON}: "
                    f"{digests} against {golden}")  # fmt: skip
