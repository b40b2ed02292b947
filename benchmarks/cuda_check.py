"""A short check for a CUDA machine: bf16 prediction latency and a bf16 LoRA training step.

    .venv/bin/python -m benchmarks.cuda_check            # on a machine with an NVIDIA GPU
    .venv/bin/python -m benchmarks.cuda_check --cpu-smoke  # the same code paths, tiny, on the CPU

1. Prediction latency (ms per case, median) of the demo back ends (clip-llm, vlm) in bf16.
2. A Gemma 3 model of real MedGemma-4B size (config from the published architecture, random
   weights, nothing downloaded) in bf16: greedy generation latency, 32 new tokens, batch 1 and 8.
3. One bf16 training step (forward + backward + AdamW) on a LoRA-wrapped demo model and on the
   real-size model: time per step, peak memory, and that the LoRA weights moved.

Exits 0 with a message when there is no CUDA device (and --cpu-smoke is not given).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def real_size_config(smoke: bool):  # noqa: ANN201
    """MedGemma 4B's architecture (Gemma 3 4B: 34 layers, width 2560; SigLIP 400M at 896 px)."""
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    if smoke:  # same shapes of the pieces, a sliver of the depth and width
        text = Gemma3TextConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, head_dim=64, vocab_size=262208, sliding_window=512)  # fmt: skip
        vision = SiglipVisionConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                                    num_attention_heads=2, image_size=224, patch_size=14)  # fmt: skip
        return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=16)
    text = Gemma3TextConfig(
        hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
        num_key_value_heads=4, head_dim=256, vocab_size=262208, sliding_window=1024,
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}},
    )  # fmt: skip
    vision = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                num_attention_heads=16, image_size=896, patch_size=14)  # fmt: skip
    return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=256)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, n: int) -> float:
    """Median ms of ``n`` calls after one warm-up."""
    fn()
    sync(device)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(out)


def real_inputs(cfg, batch: int, device: str, dtype) -> dict:  # noqa: ANN001
    """A prompt with one image: bos, boi, the image soft tokens, eoi, 64 text tokens."""
    import torch

    n_img = cfg.mm_tokens_per_image
    row = [2, cfg.boi_token_index] + [cfg.image_token_index] * n_img + [cfg.eoi_token_index]
    row += [int(t) for t in torch.randint(1000, 200000, (64,))]
    ids = torch.tensor([row] * batch, device=device)
    tt = (ids == cfg.image_token_index).long()
    side = cfg.vision_config.image_size
    pix = torch.randn(batch, 3, side, side, device=device, dtype=dtype)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": tt,
        "pixel_values": pix,
    }


def lora_step(model, inputs: dict, labels, targets, lr: float = 1e-4) -> tuple[float, bool, float]:  # noqa: ANN001
    """One training step on a fresh LoRA adapter on ``model``: ms, whether it moved, the loss."""
    import torch
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.1, target_modules=targets)
    )
    peft.train()
    params = [p for p in peft.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=lr)
    device = str(labels.device)
    sync(device)
    t0 = time.perf_counter()
    loss = peft(**inputs, labels=labels).loss
    loss.backward()
    opt.step()
    sync(device)
    ms = (time.perf_counter() - t0) * 1000.0
    moved = any(not torch.equal(a, p.detach()) for a, p in zip(before, params, strict=True))
    return ms, moved, float(loss.detach())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="run the code paths tiny on the CPU")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(
            "cuda_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check."
        )
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from core.demo.clip import build_demo_clip
    from core.demo.lm import build_demo_causal_lm, build_demo_gemma3
    from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig
    from core.models.backends.vlm import VLMBackend, VLMConfig
    from tests.core._phantoms import make_cases

    device = "cpu" if args.cpu_smoke else "cuda"
    dtype_name = "float32" if args.cpu_smoke else "bfloat16"
    dtype = getattr(torch, dtype_name)
    if device == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, bf16 supported: "
              f"{torch.cuda.is_bf16_supported()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = make_cases(root / "img", n=16, seed=3)
        build_demo_clip(root / "clip")
        build_demo_causal_lm(root / "lm")
        build_demo_gemma3(root / "vlm")
        clip_llm = ClipLLMBackend(ClipLLMConfig(clip_model=str(root / "clip"), lm_model=str(root / "lm"),
                                                device=device, dtype=dtype_name))  # fmt: skip
        vlm = VLMBackend(VLMConfig(model=str(root / "vlm"), device=device, dtype=dtype_name))
        print("\n1. demo back ends, predict latency (ms per case, median)")
        for name, b in (("clip-llm", clip_llm), ("vlm", vlm)):
            one = timed(lambda b=b: b.predict(cases[:1], batch_size=1), device, args.repeats)
            eight = timed(lambda b=b: b.predict(cases[:8], batch_size=8), device, args.repeats) / 8
            print(
                f"   {name:9s} {b.choice.describe():18s} batch 1: {one:8.2f}   batch 8: {eight:8.2f}"
            )

        print("\n3a. bf16 LoRA training step on the demo models")
        for name, b, targets in (("clip-llm", clip_llm, ["q_proj", "v_proj", "o_proj"]),
                                 ("vlm", vlm, r".*language_model.*\.(q_proj|v_proj|o_proj)")):  # fmt: skip
            enc = b.encode(cases[:8], ["ERROR - the image does not show Pneumothorax"] * 8)
            labels = enc.pop("labels")
            ms, moved, loss = lora_step(b.model, enc, labels, targets, lr=1e-3)
            print(f"   {name:9s} step {ms:8.2f} ms, loss {loss:.3f}, LoRA weights moved: {moved}")

    from transformers import Gemma3ForConditionalGeneration

    cfg = real_size_config(args.cpu_smoke)
    print(
        f"\n2. Gemma 3 at {'smoke' if args.cpu_smoke else 'MedGemma-4B'} size, random weights, {dtype_name}"
    )
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = Gemma3ForConditionalGeneration(cfg).eval()
        finally:
            torch.set_default_dtype(prev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"   built {n_params / 1e9:.2f} B parameters in {time.perf_counter() - t0:.1f} s")
    for batch in (1, 8):
        inputs = real_inputs(cfg, batch, device, dtype)

        def gen(inputs=inputs) -> None:
            with torch.inference_mode():
                model.generate(**inputs, max_new_tokens=32, min_new_tokens=32, do_sample=False)

        ms = timed(gen, device, max(1, args.repeats // 2))
        print(f"   generate 32 tokens, batch {batch}: {ms:9.1f} ms ({ms / batch:8.1f} ms per case)")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    inputs = real_inputs(cfg, 2, device, dtype)
    ms, moved, loss = lora_step(
        model, inputs, inputs["input_ids"], r".*language_model.*\.(q_proj|v_proj|o_proj)"
    )
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    print(f"\n3b. real-size LoRA step (batch 2, {inputs['input_ids'].shape[1]} tokens): {ms:.1f} ms, "
          f"loss {loss:.3f}, LoRA weights moved: {moved}, peak memory {peak:.1f} GiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
