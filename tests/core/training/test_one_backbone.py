"""Reward training and PPO on ONE backbone (issue 14).

- While the reward model trains and while PPO runs with it, the process holds exactly one set of
  backbone parameters: every live ``torch.nn.Parameter`` of a backbone shape is counted (by its
  storage) at every step, so a copy made anywhere (a deepcopy, a sequence classifier loaded from
  the policy's weights) would be seen.
- Switching adapters gives exactly what each model gives when loaded alone: the reward model's
  scores on the shared backbone equal those of its saved adapter and head loaded on fresh base
  weights, and the policy's logits (the reward adapter still on the backbone, switched off) equal
  those of its saved adapter loaded alone.
"""

from __future__ import annotations

import copy
import gc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.runtime.progress import Progress
from core.training import adapters
from core.training.judgement import Judgement
from core.training.ppo import PPOTrainer
from core.training.ppo_config import PPOConfig
from core.training.reward import RewardModel, train_reward_model
from core.training.reward_config import RewardModelConfig
from core.training.text_policy import CausalLMPolicy

from .conftest import make_cases, make_pairs

WIDTH = 48  # a width no other test's model has, so only this backbone's parameters match


def _llama(tokenizer, seed=5):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=WIDTH, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


def _backbone_shapes(model):
    return {tuple(p.shape) for n, p in model.named_parameters() if "lora_" not in n}


def live_backbone_storages(shapes):
    """Storage addresses of every live Parameter (anywhere in the process) of a backbone shape."""
    gc.collect()
    return {
        obj.untyped_storage().data_ptr()
        for obj in gc.get_objects()
        if type(obj) is torch.nn.Parameter and tuple(obj.shape) in shapes
    }


class StorageWatch:
    """A progress callback that counts the backbone's storages at every training step."""

    def __init__(self, shapes, expected):
        self.shapes, self.expected, self.samples = shapes, expected, []

    def __call__(self, event):
        if event.step and event.stage in ("reward", "ppo"):
            self.samples.append((event.stage, live_backbone_storages(self.shapes)))

    def check(self, stages):
        assert {s for s, _ in self.samples} == set(stages)
        for stage, seen in self.samples:
            assert seen == self.expected, f"{stage}: {len(seen)} backbone storages, want one set"


def _sft_adapter(policy, seed=3):
    from peft import get_peft_model

    from core.training.common import lora_config

    policy.model = get_peft_model(
        policy.model, lora_config(4, 8, 0.0, ("q_proj", "v_proj", "o_proj"), "CAUSAL_LM")
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    policy.model.eval()


def _logits(policy, cases):
    with torch.no_grad():
        return policy.model(**policy.encode(cases)).logits


def test_reward_and_ppo_hold_one_backbone_and_switch_exactly(tokenizer, tmp_path):
    base = _llama(tokenizer)
    base_weights = copy.deepcopy(base.state_dict())  # plain tensors, to rebuild "alone" models
    shapes = _backbone_shapes(base)  # LoRA's (r, 48) / (48, r) with r 4 or 16 match none
    expected = live_backbone_storages(shapes)
    n_storages = len({p.untyped_storage().data_ptr() for p in base.parameters()})
    assert len(expected) == n_storages
    policy = CausalLMPolicy(base, tokenizer)
    _sft_adapter(policy)
    watch = StorageWatch(shapes, expected)
    progress = Progress(watch)

    cases = make_cases(32, seed=4)
    rm, report = train_reward_model(
        policy, make_pairs(cases), RewardModelConfig(epochs=1, batch_size=8, eval_fraction=0.0),
        progress,
    )  # fmt: skip
    assert report.steps > 0
    assert sorted(policy.model.peft_config) == ["default", "reward"]
    judged = {c.case_id: Judgement(c.case_id, c.truth_label, c.severity) for c in cases[:16]}
    trainer = PPOTrainer(
        policy, PPOConfig(steps=2, batch_size=8, mini_batch_size=4, max_new_tokens=4),
        reward_model=rm, progress=progress, reference="current", judgements=judged,
    )  # fmt: skip
    trainer.train(cases)
    watch.check({"reward", "ppo"})
    # The trainer's own modules agree: the backbone's storages, plus the value head's.
    assert set(adapters.backbone_storages(policy.model)) == expected
    head = {p.untyped_storage().data_ptr() for p in trainer.value_head.parameters()}
    assert set(adapters.backbone_storages(trainer.wrapped)) == expected | head
    trainer.fold_adapters()
    assert live_backbone_storages(shapes) == expected

    probe = make_cases(6, seed=8)
    answers = [f"{label} - x" for label in ("ERROR", "CORRECT")] * 3
    shared_scores = rm.score(probe, answers)
    shared_logits = _logits(policy, probe)
    rm.save(tmp_path / "reward_model", report)
    policy.save_adapter(str(tmp_path / "adapter"))
    assert not (tmp_path / "adapter" / "reward").exists()  # the policy's folder: its adapter only

    def fresh():
        model = _llama(tokenizer, seed=99)
        model.load_state_dict(base_weights)
        return CausalLMPolicy(model.eval(), tokenizer)

    alone_rm = RewardModel.load(tmp_path / "reward_model", fresh())
    assert alone_rm.score(probe, answers) == shared_scores
    alone_policy = fresh()
    alone_policy.load_adapter(str(tmp_path / "adapter"))
    alone_policy.model.eval()
    assert torch.equal(_logits(alone_policy, probe), shared_logits)

    rm.release()  # the reward model leaves; the policy is untouched by its going
    assert list(policy.model.peft_config) == ["default"]
    assert torch.equal(_logits(policy, probe), shared_logits)


@pytest.fixture(scope="module")
def image_cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("img1")
    rng = np.random.default_rng(1)
    out = []
    for i, c in enumerate(make_cases(8, seed=12)):
        path = folder / f"{i}.png"
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype("uint8")).save(path)
        out.append(replace(c, image=str(path)))
    return out


def test_a_vlm_reward_model_and_ppo_share_one_backbone(image_cases, tmp_path):
    """Tiny Gemma 3 (SigLIP vision tower): the image reaches the reward model, the reward
    adapter and PPO's stay off the vision tower, PPO reuses the image features it computed once
    (same log-probs as from the pixels), and the reward model loaded alone scores the same."""
    from core.demo.lm import build_demo_gemma3
    from core.models.backends.vlm import VLMBackend, VLMConfig

    folder = build_demo_gemma3(Path(tmp_path) / "vlm")
    vlm = VLMBackend(VLMConfig(model=str(folder), device="cpu"))
    expected = {p.untyped_storage().data_ptr() for p in vlm.model.parameters()}
    pairs = make_pairs(image_cases)
    rm, report = train_reward_model(vlm, pairs, RewardModelConfig(epochs=1, eval_fraction=0.0))
    assert report.kind == "image"
    trainer = PPOTrainer(
        vlm, PPOConfig(steps=1, batch_size=4, mini_batch_size=2, max_new_tokens=3),
        reward_model=rm,
    )  # fmt: skip
    assert not adapters.image_side_adapted(vlm.model)
    batch = trainer.rollout(image_cases[:4])
    assert batch.image_features is not None
    with torch.no_grad():
        cached, _ = trainer.forward(batch, with_values=False)
        pixels = replace(
            batch, image_features=None,
            extras={**batch.extras, "pixel_values": vlm.encode(batch.cases)["pixel_values"]},
        )  # fmt: skip
        direct, _ = trainer.forward(pixels, with_values=False)
    torch.testing.assert_close(cached, direct, atol=1e-6, rtol=0)
    trainer.train(image_cases)
    held = {
        p.untyped_storage().data_ptr() for n, p in vlm.model.named_parameters() if "lora_" not in n
    }
    assert held == expected  # the same storages the model started with, no copy

    texts = [p.chosen for p in pairs[:4]]
    cases = [p.case for p in pairs[:4]]
    shared = rm.score(cases, texts)
    rm.save(tmp_path / "rm")
    alone = RewardModel.load(
        tmp_path / "rm", VLMBackend(VLMConfig(model=str(folder), device="cpu"))
    )
    assert alone.score(cases, texts) == shared
    other = [replace(c, image=image_cases[-1].image) for c in cases]
    assert rm.score(other, texts) != shared  # it sees the image
