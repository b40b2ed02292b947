"""RLHF memory and time on MedGemma-4B's architecture, at full width, with random weights.

    .venv/bin/python -m benchmarks.real_size [--layers N|auto] [--json OUT]
                                              [--device cpu|cuda] [--dtype float32|bfloat16]

Builds ``Gemma3ForConditionalGeneration`` from the published google/medgemma-4b-it configuration
(``MEDGEMMA_4B_IT`` below: SigLIP vision tower 27 x 1152 at 896 px, the projector to 256 image
tokens, the Gemma 3 text model 2560 wide with a 262,208-word vocabulary), with random weights and
no download, and a tokenizer and processor built here of the same shape (Gemma's vocabulary size
and special-token ids, 896 px images, 256 image tokens). Only the text depth changes (``--layers``;
``auto``: as deep as fits in 16 GB in fp32, since this CPU has no fast bf16).

Four steps, each in its own process, through the project's own code paths (the vlm back end's
prompt and generation, ``train_sft``, the reward model's training loop, ``PPOTrainer``):

- ``predict``: one batch of 2 cases (greedy, the back end's verdict probe);
- ``sft_step``: one LoRA SFT step on 2 gold answers (LoRA on the language model only);
- ``reward_step``: one reward-model step on 1 pair (chosen and rejected: 2 sequences), its
  adapter and head on the policy's backbone;
- ``ppo_step``: one PPO step, a rollout batch of 2, answers of at most 8 tokens, with the reward
  model, the reference and the value head all on the same backbone.

Each child reports its peak resident memory during the step (Linux ``VmHWM``, restarted once
the model is built: the whole process, libraries and weights included, but not the transients of
building random weights, which loading real ones does not have; the build's own peak is kept
apart) and the step's seconds. "Where the memory goes" is measured too: the process
before the model (libraries), the weights, the step's working memory (peak minus the memory with
the model built), and the growth of resident memory per text layer during the step's passes
(forward hooks on the decoder layers), which is what more layers add.

Full depth (34 layers) in bf16 is then estimated per step as
``libraries + weights(34 layers, bf16) + working + (34 - L) * per-layer growth / 2``: the weights
are counted exactly from the full configuration (on the meta device); the measured working
memory is kept whole (much of it does not shrink in bf16: full-vocabulary logits are upcast to
fp32 for a loss, image preprocessing is fp32), and each further layer adds its measured growth,
halved for bf16. So the estimate errs high, never low. On CUDA (``benchmarks/cuda_train_check.py``) the same
children also report the peak GPU memory and generation tokens/s, and at 34 layers in bf16 the
estimate is the measurement.

``--json OUT`` writes ``{"model_bytes", "layers", "predict": {"peak_rss_bytes", "seconds"},
"sft_step": {...}, "reward_step": {...}, "ppo_step": {...}, "full_depth_bf16_estimate": {...}}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS = ("predict", "sft_step", "reward_step", "ppo_step")
FULL_LAYERS = 34
BUDGET_BYTES = 16 * 2**30
BATCH = 2
ANSWER_TOKENS = 8

# google/medgemma-4b-it config.json (the same architecture as google/gemma-3-4b-it), as published.
MEDGEMMA_4B_IT: dict[str, Any] = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "boi_token_index": 255999,
    "eoi_token_index": 256000,
    "eos_token_id": [1, 106],
    "image_token_index": 262144,
    "initializer_range": 0.02,
    "mm_tokens_per_image": 256,
    "model_type": "gemma3",
    "text_config": {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
        "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 2560,
        "initializer_range": 0.02,
        "intermediate_size": 10240,
        "max_position_embeddings": 131072,
        "model_type": "gemma3_text",
        "num_attention_heads": 8,
        "num_hidden_layers": 34,
        "num_key_value_heads": 4,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000.0,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "rope_theta": 1000000.0,
        "sliding_window": 1024,
        "sliding_window_pattern": 6,
        "use_cache": True,
        "vocab_size": 262208,
    },
    "torch_dtype": "bfloat16",
    "vision_config": {
        "attention_dropout": 0.0,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 1152,
        "image_size": 896,
        "intermediate_size": 4304,
        "layer_norm_eps": 1e-06,
        "model_type": "siglip_vision_model",
        "num_attention_heads": 16,
        "num_channels": 3,
        "num_hidden_layers": 27,
        "patch_size": 14,
        "vision_use_head": False,
    },
}
# Gemma's special-token ids (its tokenizer.json), which the configuration above refers to.
SPECIAL_IDS = {
    "<pad>": 0,
    "<eos>": 1,
    "<bos>": 2,
    "<unk>": 3,
    "<start_of_turn>": 105,
    "<end_of_turn>": 106,
    "<start_of_image>": 255999,
    "<end_of_image>": 256000,
    "<image_soft_token>": 262144,
}
# A rehearsal of the script itself (``--rehearse``): the same shapes where they decide the
# sequence (vocabulary, 896 px, 256 image tokens), tiny widths.
REHEARSAL = {
    "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
                    "num_key_value_heads": 1, "head_dim": 32, "query_pre_attn_scalar": 32},
    "vision_config": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
                      "num_hidden_layers": 2},
}  # fmt: skip


def medgemma_config(layers: int, rehearse: bool = False) -> Any:
    """The published configuration with ``layers`` text layers (the first ``layers`` of the 34,
    with their sliding/full attention pattern)."""
    from transformers import Gemma3Config

    raw = copy.deepcopy(MEDGEMMA_4B_IT)
    raw["text_config"]["num_hidden_layers"] = layers
    if rehearse:
        for part, values in REHEARSAL.items():
            raw[part].update(values)
    cfg = Gemma3Config.from_dict(raw)
    cfg.text_config.pad_token_id, cfg.text_config.bos_token_id = 0, 2
    return cfg


def param_bytes(config: Any, dtype: Any) -> int:
    """Bytes of the model's parameters for ``config`` in ``dtype``, counted on the meta device."""
    import torch
    from transformers import Gemma3ForConditionalGeneration

    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(config)
    return sum(p.numel() for p in model.parameters()) * torch.empty((), dtype=dtype).element_size()


def build_tokenizer() -> Any:
    """A byte-level BPE trained on the demo's words, laid out in Gemma's 262,208-entry vocabulary:
    Gemma's special tokens at Gemma's ids, unused entries filling the rest. The prompts tokenize
    to about as many tokens as with Gemma's own tokenizer; the embedding and output layer have
    the real size."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from core.demo.tokenizer import CHAT_TEMPLATE, build_demo_tokenizer

    vocab_size = MEDGEMMA_4B_IT["text_config"]["vocab_size"]
    trained = json.loads(build_demo_tokenizer(vocab_size=4096).backend_tokenizer.to_str())
    learned = [t for t, _ in sorted(trained["model"]["vocab"].items(), key=lambda kv: kv[1])]
    learned = [t for t in learned if t not in SPECIAL_IDS]
    vocab = dict(SPECIAL_IDS)
    free = (i for i in range(vocab_size) if i not in SPECIAL_IDS.values())
    for token in learned:
        vocab[token] = next(free)
    for i in free:
        vocab[f"<unused{i}>"] = i
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["model"]["merges"]
    ]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL_IDS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", padding_side="left", chat_template=CHAT_TEMPLATE,
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
    )  # fmt: skip


def build_processor(tokenizer: Any) -> Any:
    """Gemma 3's processor at MedGemma's shape: 896 x 896 images, 256 image tokens."""
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    from core.demo.tokenizer import CHAT_TEMPLATE

    side = MEDGEMMA_4B_IT["vision_config"]["image_size"]
    images = Gemma3ImageProcessor(
        size={"height": side, "width": side}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        do_pan_and_scan=False,
    )  # fmt: skip
    return Gemma3Processor(
        image_processor=images, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
        image_seq_length=MEDGEMMA_4B_IT["mm_tokens_per_image"],
    )  # fmt: skip


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    """The resident high-water mark since ``_reset_peak`` (Linux ``VmHWM``), else since start."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _reset_peak() -> bool:
    """Restart the high-water mark at the current resident size (Linux ``clear_refs`` 5), so the
    step's peak is not the model build's: building random weights has transients of its own
    that loading real weights does not share."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class LayerGrowth:
    """Forward hooks on the text decoder layers: within each pass, how much memory (resident, or
    allocated on CUDA) each further layer adds; the largest per-layer growth seen is kept."""

    def __init__(self, layers: Any, cuda: bool) -> None:
        import torch

        self.cuda, self.per_layer, self._marks = cuda, 0, []
        self._read = torch.cuda.memory_allocated if cuda else _rss
        self._handles = [
            layer.register_forward_hook(self._hook(i, len(layers)))
            for i, layer in enumerate(layers)
        ]

    def _hook(self, index: int, count: int) -> Any:
        def hook(*_: Any) -> None:
            if index == 0:
                self._marks = []
            self._marks.append(self._read())
            if index == count - 1 and count > 1 and len(self._marks) == count:
                growth = (self._marks[-1] - self._marks[0]) // (count - 1)
                self.per_layer = max(self.per_layer, growth)

        return hook


def _cases(folder: Path, n: int) -> list[Any]:
    from dataclasses import replace

    import numpy as np
    from PIL import Image

    from tests.core.training.conftest import make_cases

    rng = np.random.default_rng(0)
    out = []
    for i, case in enumerate(make_cases(n, seed=21)):
        path = folder / f"{i}.png"
        Image.fromarray((rng.random((512, 512, 3)) * 255).astype("uint8")).save(path)
        out.append(replace(case, image=str(path)))
    return out


def _policy(layers: int, device: str, dtype: str, rehearse: bool) -> Any:
    """The vlm back end (its prompt, encoding and generation, exactly) on the model built here."""
    import torch
    from transformers import Gemma3ForConditionalGeneration

    from core.models.backends.vlm import VLMBackend, VLMConfig
    from core.runtime.devices import select_device

    class BuiltVLM(VLMBackend):
        def __init__(self, model: Any, processor: Any) -> None:  # no loading: the model is here
            self.config = VLMConfig(model="built-in-memory", device=device, dtype=dtype)
            self.choice = select_device(device, dtype)
            self.processor, self.tokenizer = processor, processor.tokenizer
            self.model, self.max_new_tokens, self.image_root = model, 32, None
            self._setup_generation()

    cfg = medgemma_config(layers, rehearse)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = Gemma3ForConditionalGeneration(cfg)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = [SPECIAL_IDS["<eos>"], SPECIAL_IDS["<end_of_turn>"]]
    model.generation_config.pad_token_id = SPECIAL_IDS["<pad>"]
    return BuiltVLM(model.eval(), build_processor(build_tokenizer()))


def child(step: str, layers: int, device: str, dtype: str, rehearse: bool) -> dict[str, Any]:
    """Build the model, run one ``step``, return its measurements."""
    import torch

    from core.training import adapters

    cuda = device.startswith("cuda")
    rss_import = _rss()
    t_build = time.perf_counter()
    policy = _policy(layers, device, dtype, rehearse)
    build_s = time.perf_counter() - t_build
    model_bytes = sum(p.numel() * p.element_size() for p in policy.model.parameters())
    folder = Path(tempfile.mkdtemp(prefix="real-size-"))
    cases = _cases(folder, BATCH)
    build_peak = _peak_rss()
    reset = _reset_peak()
    rss_model = _rss()
    growth = LayerGrowth(policy.model.model.language_model.layers, cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tokens = {"n": 0, "s": 0.0}
    t0 = time.perf_counter()
    if step == "predict":
        generate = policy.model.generate

        def counted(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            out = generate(*a, **kw)
            tokens["s"] += time.perf_counter() - t
            tokens["n"] += (out.shape[1] - kw["input_ids"].shape[1]) * out.shape[0]
            return out

        policy.model.generate = counted
        verdicts = policy.predict(cases, batch_size=BATCH)
        assert len(verdicts) == BATCH
    elif step == "sft_step":
        from core.training.sft import train_sft
        from core.training.sft_config import SFTSettings

        targets = adapters.language_model_targets(policy.model, ("q_proj", "v_proj", "o_proj"))
        gold = [(c, f"ERROR - {c.treatment} is not indicated for {c.finding}") for c in cases]
        report = train_sft(
            policy, gold, SFTSettings(epochs=1, batch_size=BATCH, target_modules=tuple(targets))
        )
        assert report.steps == 1
    elif step == "reward_step":
        from core.training import reward
        from core.training.reward_config import RewardModelConfig
        from tests.core.training.conftest import make_pairs

        pairs = make_pairs(cases)[:1]
        _, steps, _ = reward._train_adapter(
            policy, pairs, RewardModelConfig(epochs=1, batch_size=1), None, "image"
        )
        assert steps == 1
    elif step == "ppo_step":
        from core.training.ppo import PPOTrainer
        from core.training.ppo_config import PPOConfig
        from core.training.reward import RewardModel, _new_head
        from core.training.reward_config import RewardModelConfig

        rc = RewardModelConfig()
        targets = adapters.language_model_targets(policy.model, rc.target_modules)
        adapters.attach(
            policy, "reward", adapters.lora(rc.lora_r, rc.lora_alpha, 0.0, targets)
        )  # an untrained reward model costs what a trained one does
        rm = RewardModel("image", policy, _new_head(policy).eval(), "reward")
        cfg = PPOConfig(
            steps=1, batch_size=BATCH, mini_batch_size=BATCH, max_new_tokens=ANSWER_TOKENS
        )
        report = PPOTrainer(policy, cfg, reward_model=rm).train(cases)
        assert report.steps == 1
    else:
        raise ValueError(f"unknown step {step!r}")
    seconds = time.perf_counter() - t0
    peak = _peak_rss()
    shutil.rmtree(folder, ignore_errors=True)
    out: dict[str, Any] = {
        "peak_rss_bytes": peak,
        "peak_is_the_steps": reset,
        "build_peak_rss_bytes": build_peak,
        "seconds": seconds,
        "rss_libraries": rss_import,
        "rss_with_model": rss_model,
        "model_bytes": model_bytes,
        "per_layer_bytes": growth.per_layer,
        "build_seconds": build_s,
        "threads": torch.get_num_threads(),
    }
    if cuda:
        out["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    if tokens["s"]:
        out["generation_tokens_per_s"] = tokens["n"] / tokens["s"]
    return out


def auto_layers(dtype_bytes: int = 4) -> int:
    """The deepest text model whose weights, with half as much again for libraries, activations
    and optimizer, fit in 16 GB."""
    import torch

    fixed = param_bytes(medgemma_config(1), torch.float32) // 4 * dtype_bytes
    per_layer = (param_bytes(medgemma_config(2), torch.float32) // 4 * dtype_bytes) - fixed
    fixed -= per_layer
    return max(1, min(FULL_LAYERS, int((BUDGET_BYTES / 1.5 - fixed) // per_layer)))


def estimate(results: dict[str, dict[str, Any]], layers: int, dtype: str) -> dict[str, Any]:
    """Each step's peak at 34 layers in bf16 (see the module docstring)."""
    import torch

    full = param_bytes(medgemma_config(FULL_LAYERS), torch.bfloat16)
    out: dict[str, Any] = {"layers": FULL_LAYERS, "model_bytes": full}
    scale = 0.5 if dtype == "float32" else 1.0  # per-layer activations measured in fp32 -> bf16
    for step, r in results.items():
        if "peak_cuda_bytes" in r:  # on the GPU: weights and activations live there
            if layers == FULL_LAYERS and dtype == "bfloat16":
                out[step] = {"peak_rss_bytes": r["peak_cuda_bytes"]}
                continue
            libraries = 0
            working = max(0, r["peak_cuda_bytes"] - r["model_bytes"])
        else:
            libraries = r["rss_with_model"] - r["model_bytes"]
            working = max(0, r["peak_rss_bytes"] - r["rss_with_model"])
        deeper = max(0, FULL_LAYERS - layers) * r["per_layer_bytes"] * scale
        out[step] = {"peak_rss_bytes": int(libraries + full + working + deeper)}
    return out


def run(layers: int, device: str, dtype: str, rehearse: bool) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    for step in STEPS:
        cmd = [sys.executable, "-m", "benchmarks.real_size", "--child", step, "--layers", str(layers),
               "--device", device, "--dtype", dtype] + (["--rehearse"] if rehearse else [])  # fmt: skip
        print(
            f"real_size: {step} ({layers} text layers, {device} {dtype}) ...",
            file=sys.stderr,
            flush=True,
        )
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        results[step] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[step]
        print(f"  peak {r['peak_rss_bytes'] / 2**30:.2f} GiB, {r['seconds']:.1f} s "
              f"(model built in {r['build_seconds']:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
    return results


def report(
    results: dict[str, dict[str, Any]], layers: int, dtype: str, extra: bool
) -> dict[str, Any]:
    """The JSON of the module docstring (``extra``: CUDA figures too)."""
    first = results[STEPS[0]]
    doc: dict[str, Any] = {"model_bytes": first["model_bytes"], "layers": layers}
    for step in STEPS:
        r = results[step]
        doc[step] = {"peak_rss_bytes": r["peak_rss_bytes"], "seconds": r["seconds"]}
        if extra and "peak_cuda_bytes" in r:
            doc[step]["peak_cuda_bytes"] = r["peak_cuda_bytes"]
    doc["full_depth_bf16_estimate"] = estimate(results, layers, dtype)
    if extra and "generation_tokens_per_s" in first:
        doc["generation_tokens_per_s"] = first["generation_tokens_per_s"]
    return doc


def describe(results: dict[str, dict[str, Any]], doc: dict[str, Any]) -> str:
    """Where the memory goes, in words."""
    gib = 2**30
    lines = [f"model {doc['model_bytes'] / gib:.2f} GiB at {doc['layers']} text layers"]
    base = results["predict"]["peak_rss_bytes"]
    est = doc["full_depth_bf16_estimate"]
    for step in STEPS:
        r = results[step]
        lines.append(
            f"{step:12s} peak {r['peak_rss_bytes'] / gib:6.2f} GiB ({r['peak_rss_bytes'] / base:.2f}x"
            f" predict) {r['seconds']:7.1f} s | libraries {r['rss_libraries'] / gib:.2f}, with model "
            f"{r['rss_with_model'] / gib:.2f}, step working memory "
            f"{(r['peak_rss_bytes'] - r['rss_with_model']) / gib:.2f}, per text layer "
            f"{r['per_layer_bytes'] / 2**20:.0f} MiB | 34 layers bf16: "
            f"{est[step]['peak_rss_bytes'] / gib:.2f} GiB "
            f"({est[step]['peak_rss_bytes'] / est['predict']['peak_rss_bytes']:.2f}x predict)"
        )
    lines.append(f"full model, 34 layers, bf16: {est['model_bytes'] / gib:.2f} GiB of weights")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--layers", default="auto", help="text layers (auto: as deep as fits 16 GB)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    parser.add_argument("--rehearse", action="store_true", help="tiny widths: check the script")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    layers = auto_layers() if args.layers == "auto" else int(args.layers)
    if args.child:
        print(json.dumps(child(args.child, layers, args.device, args.dtype, args.rehearse)))
        return 0
    t0 = time.perf_counter()
    results = run(layers, args.device, args.dtype, args.rehearse)
    doc = report(results, layers, args.dtype, extra=args.device.startswith("cuda"))
    print(describe(results, doc))
    print(f"real_size: {time.perf_counter() - t0:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
