"""A bf16 SFT, reward-model and PPO step on the demo models, on CUDA.

    .venv/bin/python -m benchmarks.cuda_train_check [--rehearse-on-cpu]

Builds the tiny demo causal LM (clip-llm, text prompt) and the tiny Gemma 3 (vlm, with images),
loads them on ``cuda`` in the device's dtype (bf16 where supported), and runs one short SFT, one
reward-model training and two PPO steps on each, checking that every loss is finite and that the
LoRA weights moved. With no CUDA device it says so and exits 0 (``--rehearse-on-cpu`` runs the
same steps on the CPU in fp32, to check the script itself).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main() -> int:
    import torch

    device = "cpu" if "--rehearse-on-cpu" in sys.argv else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("cuda_train_check: no CUDA device here; nothing to check (exit 0)")
        return 0
    import numpy as np
    from PIL import Image

    from core.backends.clip_llm import ClipLLMBackend, ClipLLMConfig
    from core.backends.vlm import VLMBackend, VLMConfig
    from core.models.demo_lm import build_demo_causal_lm, build_demo_gemma3
    from core.training.ppo import PPOTrainer
    from core.training.ppo_config import PPOConfig
    from core.training.reward import train_reward_model
    from core.training.reward_config import RewardModelConfig
    from core.training.sft import train_sft
    from core.training.sft_config import SFTSettings
    from tests.core.training.conftest import make_cases, make_pairs, verdict_text

    if device == "cuda":
        name, bf16 = torch.cuda.get_device_name(0), torch.cuda.is_bf16_supported()
        print(f"cuda_train_check: {name}, bf16 {bf16}")
    else:
        print("cuda_train_check: rehearsal on the CPU (fp32)")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "img.png"
        Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")).save(
            image
        )
        cases = [replace(c, image=str(image)) for c in make_cases(32, seed=1)]
        policies = {
            "clip-llm": lambda: ClipLLMBackend(ClipLLMConfig(
                lm_model=str(build_demo_causal_lm(Path(tmp) / "lm")), describe_image=False,
                device=device)),
            "vlm": lambda: VLMBackend(VLMConfig(model=str(build_demo_gemma3(Path(tmp) / "vlm")), device=device)),
        }  # fmt: skip
        for name, make in policies.items():
            t0 = time.perf_counter()
            policy = make()
            dtype = next(policy.model.parameters()).dtype
            gold = [(c, verdict_text(c, c.truth_label)) for c in cases[:16]]
            sft = train_sft(policy, gold, SFTSettings(epochs=1, batch_size=8))
            lora = {
                n: p.detach().float().clone()
                for n, p in policy.model.named_parameters()
                if "lora_B" in n
            }
            rm, rep = train_reward_model(policy, make_pairs(cases), RewardModelConfig(epochs=1))
            ppo = PPOTrainer(policy, PPOConfig(steps=2, batch_size=8, mini_batch_size=4, max_new_tokens=8),
                             reward_model=rm).train(cases)  # fmt: skip
            moved = any(not torch.equal(p.detach().float(), lora[n])
                        for n, p in policy.model.named_parameters() if n in lora)  # fmt: skip
            losses = [sft.final_loss, rep.train_loss, *(r["loss"] for r in ppo.history)]
            finite = all(x is not None and math.isfinite(x) for x in losses)
            ok &= finite and moved
            print(
                f"  {name}: model dtype {dtype}, SFT loss {sft.final_loss:.4f}, reward ({rep.kind}) loss "
                f"{rep.train_loss:.4f}, PPO rewards {[round(r['reward'], 3) for r in ppo.history]}, "
                f"kl {[round(r['kl'], 4) for r in ppo.history]}, LoRA moved {moved}, finite {finite}, "
                f"peak {_peak_mib(device):.0f} MiB, {time.perf_counter() - t0:.1f} s"
            )
    print("cuda_train_check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def _peak_mib(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
