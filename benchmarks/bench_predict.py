"""Prediction overhead and batching, on the demo models (CPU unless --device says otherwise).

    .venv/bin/python -m benchmarks.bench_predict [--cases 24] [--device cpu] [--repeats 3]
        [--lm-width 64 --lm-layers 2]   (the demo LM; larger values show the trend with model size)

1. Per-case latency of ``Backend.predict([case])`` (from the case: image file, CLIP description,
   prompt, tokenization, greedy generation with the verdict probe, decoding, parsing) against the
   bare model calls on the same, already prepared inputs (clip-llm: CLIP ``encode_image`` plus the
   LM's ``generate``; vlm: ``generate``), interleaved case by case; the ratio of the medians.
   docs/architecture.md's budget: under 1.10.
2. Throughput of ``predict`` unbatched (batch 1) against batched (8 and 16), in cases per second.

Both paths generate the same tokens (greedy, same stopping), so the ratio measures what predict
adds: mostly decoding the image file and preprocessing it (about 1 ms a case), a fixed cost that
weighs on a tiny demo model and vanishes next to a real one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _cases(folder: Path, n: int) -> list:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.core._phantoms import make_cases

    return make_cases(folder, n=n, seed=7)


def _bare_clip_llm(b, case) -> callable:
    """The bare model calls for one case, on inputs prepared outside the timing."""
    from core.models.backends._policy import load_pil, resolve_image

    pixels = b.scorer.preprocess(load_pil(resolve_image(case.image, None))).unsqueeze(0)
    inputs = b.encode([case])
    kw = dict(max_new_tokens=b.max_new_tokens, do_sample=False,
              pad_token_id=b.tokenizer.pad_token_id, eos_token_id=b._eos_ids)  # fmt: skip

    def call() -> None:
        with torch.inference_mode():
            b.scorer.model.encode_image(pixels, normalize=True)
            b.model.generate(**inputs, **kw)

    return call


def _bare_vlm(b, case) -> callable:
    inputs = b.encode([case])
    kw = dict(max_new_tokens=b.max_new_tokens, do_sample=False,
              pad_token_id=b.tokenizer.pad_token_id, eos_token_id=b._eos_ids)  # fmt: skip

    def call() -> None:
        with torch.inference_mode():
            b.model.generate(**inputs, **kw)

    return call


def _clock(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def overhead(b, cases, bare_for, clear, repeats: int) -> tuple[float, float, float]:
    """Median ms per case of predict and of the bare calls, and their ratio."""
    bare_calls = [bare_for(b, c) for c in cases]
    b.predict(cases[:2], batch_size=1)  # warm up
    bare_calls[0]()
    ours, bare = [], []
    for _ in range(repeats):
        for c, call in zip(cases, bare_calls, strict=True):
            clear()
            ours.append(_clock(lambda c=c: b.predict([c], batch_size=1)))
            bare.append(_clock(call))
    mo, mb = statistics.median(ours), statistics.median(bare)
    return mo, mb, mo / mb


def throughput(b, cases, clear, batch: int) -> float:
    clear()
    t0 = time.perf_counter()
    b.predict(cases, batch_size=batch)
    return len(cases) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lm-width", type=int, default=64, help="LM hidden size (64: the demo model)")
    ap.add_argument("--lm-layers", type=int, default=2, help="LM layers (2: the demo model)")
    args = ap.parse_args()

    from core.demo.clip import build_demo_clip
    from core.demo.lm import DemoLMConfig, build_demo_causal_lm, build_demo_gemma3
    from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig
    from core.models.backends.vlm import VLMBackend, VLMConfig
    from core.runtime.devices import configure_threads

    print(f"torch threads: {configure_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = _cases(root / "img", args.cases)
        build_demo_clip(root / "clip")
        lm_cfg = DemoLMConfig()
        if (args.lm_width, args.lm_layers) != (lm_cfg.hidden_size, lm_cfg.layers):
            lm_cfg = DemoLMConfig(hidden_size=args.lm_width, layers=args.lm_layers, heads=max(4, args.lm_width // 64),
                                  kv_heads=2, intermediate_size=4 * args.lm_width)  # fmt: skip
        build_demo_causal_lm(root / "lm", lm_cfg)
        build_demo_gemma3(root / "vlm", lm_cfg)
        clip_llm = ClipLLMBackend(
            ClipLLMConfig(
                clip_model=str(root / "clip"), lm_model=str(root / "lm"), device=args.device
            )
        )
        vlm = VLMBackend(VLMConfig(model=str(root / "vlm"), device=args.device))
        rows = [
            ("clip-llm", clip_llm, _bare_clip_llm, clip_llm._descriptions.clear),
            ("vlm", vlm, _bare_vlm, lambda: None),
        ]
        n_lm = sum(p.numel() for p in clip_llm.model.parameters()) / 1e6
        print(f"device: {clip_llm.choice.describe()}, {args.cases} cases x {args.repeats}, max_new_tokens 32, "
              f"LM {n_lm:.2f} M parameters (width {args.lm_width}, {args.lm_layers} layers)")  # fmt: skip
        print(f"{'back end':10s} {'predict ms':>11s} {'bare ms':>9s} {'ratio':>7s} | "
              f"{'b=1 c/s':>8s} {'b=8 c/s':>8s} {'b=16 c/s':>9s} {'b16/b1':>7s}")  # fmt: skip
        for name, b, bare_for, clear in rows:
            mo, mb, ratio = overhead(b, cases, bare_for, clear, args.repeats)
            t1, t8, t16 = (throughput(b, cases, clear, k) for k in (1, 8, 16))
            print(
                f"{name:10s} {mo:11.2f} {mb:9.2f} {ratio:7.3f} | {t1:8.1f} {t8:8.1f} {t16:9.1f} {t16 / t1:7.2f}"
            )


if __name__ == "__main__":
    main()
