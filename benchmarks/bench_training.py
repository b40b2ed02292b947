"""Training overhead and memory, measured (not asserted): prints figures.

    .venv/bin/python -m benchmarks.bench_training [--steps N] [--width W]

1. Reward model: seconds per optimizer step of our ``train_reward_model`` (its LoRA adapter and
   scalar head on the policy's own backbone, our Bradley-Terry loop with the policy's encoding,
   progress and cancel checks) against bare TRL ``RewardTrainer`` on the same pre-tokenized pairs
   with a separate sequence classifier of the same weights and LoRA. Each training loop is timed
   (ours: ``reward._train_adapter``; TRL: ``train()``); the figure is seconds / optimizer steps,
   median of three runs each (alternating). Target: overhead under 5%.
2. PPO memory: peak resident memory of a process that loads the policy and generates, against
   one that runs PPO steps on the same policy (LoRA, value head, optimizer, the reference as the
   adapter-disabled model). A second copy of the model would add its whole size; the script
   prints the model's size beside the difference so that can be read off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _policy(width: int, layers: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.demo.tokenizer import build_demo_tokenizer
    from core.training.text_policy import CausalLMPolicy

    tok = build_demo_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width,
        num_hidden_layers=layers, num_attention_heads=max(1, width // 64),
        num_key_value_heads=max(1, width // 64), pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    return CausalLMPolicy(LlamaForCausalLM(cfg).eval(), tok)


def _pairs(n: int):
    from tests.core.training.conftest import make_cases, make_pairs

    return make_pairs(make_cases(n, seed=1))


def reward_overhead(steps: int, width: int, repeats: int = 3) -> dict[str, float]:
    import torch
    import trl
    from datasets import Dataset

    from core.training import reward
    from core.training.common import base_state_dict, lora_config, precision_args, quiet_trainer
    from core.training.reward import preference_rows, train_reward_model
    from core.training.reward_config import RewardModelConfig

    torch.set_num_threads(1)
    timings: dict[str, list[float]] = {"ours": [], "bare": []}
    original_train, original_loop = trl.RewardTrainer.train, reward._train_adapter
    last: dict[str, float] = {}

    def timed_train(self, *a, **kw):
        t0 = time.perf_counter()
        out = original_train(self, *a, **kw)
        last["seconds"], last["steps"] = time.perf_counter() - t0, self.state.global_step
        return out

    def timed_loop(*a, **kw):
        t0 = time.perf_counter()
        out = original_loop(*a, **kw)
        last["seconds"], last["steps"] = time.perf_counter() - t0, out[1]
        return out

    def classifier(policy):
        from transformers import AutoModelForSequenceClassification

        cfg = (
            policy.model.get_base_model().config
            if hasattr(policy.model, "get_base_model")
            else policy.model.config
        )
        cfg = type(cfg).from_dict({**cfg.to_dict(), "num_labels": 1})
        model = AutoModelForSequenceClassification.from_config(cfg)
        model.load_state_dict(base_state_dict(policy.model), strict=False)
        return model

    trl.RewardTrainer.train, reward._train_adapter = timed_train, timed_loop
    try:
        policy = _policy(width, 4)
        batch = 8
        pairs = _pairs(steps * batch)
        cfg = RewardModelConfig(kind="text", epochs=1, batch_size=batch, eval_fraction=0.0)
        for _ in range(repeats):
            rm, _ = train_reward_model(policy, pairs, cfg)
            rm.release()
            timings["ours"].append(last["seconds"] / last["steps"])

            model = classifier(policy)
            data = Dataset.from_list(preference_rows(policy, pairs, True))
            args = trl.RewardConfig(
                output_dir="/tmp/bench-reward", per_device_train_batch_size=batch,
                num_train_epochs=1, learning_rate=cfg.learning_rate, max_length=cfg.max_length,
                logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
                dataloader_pin_memory=False, **precision_args("cpu"),
            )  # fmt: skip
            peft = lora_config(cfg.lora_r, cfg.lora_alpha, 0.0, cfg.target_modules, "SEQ_CLS")
            trainer = trl.RewardTrainer(
                model=model, args=args, train_dataset=data,
                processing_class=policy.tokenizer, peft_config=peft,
            )  # fmt: skip
            quiet_trainer(trainer)
            trainer.train()
            timings["bare"].append(last["seconds"] / last["steps"])
    finally:
        trl.RewardTrainer.train, reward._train_adapter = original_train, original_loop
    ours, bare = statistics.median(timings["ours"]), statistics.median(timings["bare"])
    return {"ours_s_per_step": ours, "bare_s_per_step": bare, "overhead": ours / bare - 1}


def _child_memory(mode: str, width: int, layers: int, steps: int) -> None:
    """Run in a child: load the policy, then generate only (``policy``) or run PPO (``ppo``)."""
    import resource

    import torch

    from core.training.ppo import PPOTrainer
    from core.training.ppo_config import PPOConfig
    from tests.core.training.conftest import make_cases

    torch.set_num_threads(1)
    policy = _policy(width, layers)
    size = sum(p.numel() * p.element_size() for p in policy.model.parameters())
    cases = make_cases(32, seed=2)
    if mode == "policy":
        for _ in range(steps):
            enc = policy.encode(cases[:16])
            with torch.no_grad():
                policy.model(**enc)
            policy.generate(cases[:16], do_sample=True, max_new_tokens=16)
    else:
        trainer = PPOTrainer(
            policy, PPOConfig(steps=steps, batch_size=16, mini_batch_size=8, max_new_tokens=16),
            reward_fn=lambda c, t: [float(x.startswith("ERROR")) for x in t],
        )  # fmt: skip
        trainer.train(cases)
        # Every parameter the PPO modules hold, counted once per storage: a reference copy
        # of the model would double this.
        seen, held = set(), 0
        for p in trainer.wrapped.parameters():
            key = p.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                held += p.untyped_storage().nbytes()
        size = held
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": peak_kb / 1024, "model_mb": size / 2**20}))


def ppo_memory(width: int, layers: int, steps: int) -> dict[str, float]:
    out = {}
    for mode in ("policy", "ppo"):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_training", "--child", mode,
             "--width", str(width), "--layers", str(layers), "--steps", str(steps)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "ppo_params_mb": out["ppo"]["model_mb"],
        "model_mb": out["policy"]["model_mb"],
        "policy_peak_mb": out["policy"]["peak_mb"],
        "ppo_peak_mb": out["ppo"]["peak_mb"],
        "ppo_extra_mb": out["ppo"]["peak_mb"] - out["policy"]["peak_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--mem-width", type=int, default=1024)
    parser.add_argument("--child", choices=("policy", "ppo"))
    args = parser.parse_args()
    if args.child:
        _child_memory(args.child, args.width, args.layers, args.steps)
        return
    t0 = time.perf_counter()
    r = reward_overhead(args.steps, args.width)
    print(
        f"reward model, {args.steps} steps of 8 pairs, Llama width {args.width}, 4 layers, CPU 1 thread:\n"
        f"  ours {r['ours_s_per_step'] * 1000:.1f} ms/step, bare TRL RewardTrainer "
        f"{r['bare_s_per_step'] * 1000:.1f} ms/step, overhead {r['overhead']:+.1%} (target < 5%)"
    )
    m = ppo_memory(args.mem_width, args.layers, 3)
    print(
        f"PPO memory, Llama width {args.mem_width}, {args.layers} layers "
        f"(model {m['model_mb']:.0f} MB fp32):\n"
        f"  policy alone (load, forward, generate): peak {m['policy_peak_mb']:.0f} MB\n"
        f"  PPO (LoRA, value head, optimizer, adapter-off reference): peak {m['ppo_peak_mb']:.0f} MB"
        f" (+{m['ppo_extra_mb']:.0f} MB: activations for backward, optimizer state)\n"
        f"  parameters held by PPO (policy, LoRA, value head; the reference is the same weights): "
        f"{m['ppo_params_mb']:.1f} MB, against {m['model_mb']:.1f} MB for the policy alone"
    )
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
