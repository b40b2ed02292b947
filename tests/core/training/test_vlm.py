"""The trainers through a vlm back end (tiny Gemma 3): the image reaches the reward model and PPO."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.training.ppo import PPOTrainer
from core.training.ppo_config import PPOConfig
from core.training.reward import RewardModel, train_reward_model
from core.training.reward_config import RewardModelConfig

from .conftest import make_cases, make_pairs


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    from core.demo.lm import build_demo_gemma3
    from core.models.backends.vlm import VLMBackend, VLMConfig

    folder = build_demo_gemma3(tmp_path_factory.mktemp("vlm") / "model")
    return VLMBackend(VLMConfig(model=str(folder), device="cpu"))


@pytest.fixture(scope="module")
def image_cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    out = []
    for i, c in enumerate(make_cases(16, seed=9)):
        path = folder / f"{i}.png"
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype("uint8")).save(path)
        out.append(replace(c, image=str(path)))
    return out


def test_image_reward_model_sees_pixels_and_round_trips(vlm, image_cases, tmp_path):
    pairs = make_pairs([c for c in image_cases if c.is_error])
    rm, report = train_reward_model(vlm, pairs, RewardModelConfig(epochs=1, eval_fraction=0.0))
    assert report.kind == "image"  # auto: the policy's inputs carry pixel_values
    cases, texts = [p.case for p in pairs[:2]], [p.chosen for p in pairs[:2]]
    again = RewardModel.load(rm.save(tmp_path / "rm"), vlm)
    assert again.score(cases, texts) == pytest.approx(rm.score(cases, texts), abs=1e-5)
    # A different image changes the score: the reward model looks at the picture.
    other = [replace(c, image=image_cases[-1].image) for c in cases]
    assert rm.score(other, texts) != pytest.approx(rm.score(cases, texts), abs=1e-7)


def test_ppo_on_a_vlm_passes_pixels_and_starts_at_the_reference(vlm, image_cases):
    trainer = PPOTrainer(
        vlm, PPOConfig(steps=2, batch_size=4, mini_batch_size=2, max_new_tokens=4),
        reward_fn=lambda cases, texts: [float(t.startswith("ERROR")) for t in texts],
    )  # fmt: skip
    batch = trainer.rollout(image_cases[:4])
    # The image is encoded once per rollout and its features reused by every later pass.
    assert batch.image_features is not None and "pixel_values" not in batch.extras
    with torch.no_grad():
        logp, _ = trainer.forward(batch, with_values=False)
    mask = batch.answer_mask
    assert torch.equal(logp * mask, trainer.reference_logprobs(batch) * mask)
    report = trainer.train(image_cases)
    assert report.steps == 2 and all(r["loss"] == r["loss"] for r in report.history)


def test_sft_on_a_vlm_lowers_the_loss_on_its_examples(image_cases):
    from core.demo.lm import build_demo_gemma3
    from core.models.backends.vlm import VLMBackend, VLMConfig
    from core.training.sft import train_sft
    from core.training.sft_config import SFTSettings

    from .conftest import verdict_text

    folder = build_demo_gemma3(Path(image_cases[0].image).parent / "sft-vlm")
    vlm = VLMBackend(VLMConfig(model=str(folder), device="cpu"))
    gold = [(c, verdict_text(c, c.truth_label)) for c in image_cases[:8]]
    report = train_sft(
        vlm,
        gold,
        SFTSettings(epochs=6, batch_size=4, gradient_accumulation_steps=2, learning_rate=3e-3),
    )
    assert report.steps == 6  # 12 batches of 4, two per update
    assert report.final_loss < report.first_loss
    assert hasattr(vlm.model, "peft_config")
