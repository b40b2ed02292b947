"""DPO and GRPO (TRL) from the same data: the starting model (its adapter included) is their
reference, so after SFT the first step's implicit reward (DPO) and KL (GRPO) are 0; they train
only the policy's adapter; they run for a vlm too, through TRL's image support."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from core.training import adapters
from core.training.alternatives import train_dpo, train_grpo
from core.training.data import TrainingData, flip_verdict
from core.training.judgement import Judgement
from core.training.ppo_config import PPOConfig
from core.training.retrain_config import RetrainConfig
from core.training.sft import train_sft
from core.training.sft_config import SFTSettings

from .conftest import make_cases, make_pairs, verdict_text


def _config() -> RetrainConfig:
    return RetrainConfig(
        device="cpu",
        sft=SFTSettings(epochs=1, batch_size=4, learning_rate=1e-3, lora_dropout=0.0),
        ppo=PPOConfig(steps=2, batch_size=4, mini_batch_size=4, max_new_tokens=6),
    )


def _data(cases) -> TrainingData:
    pairs = make_pairs(cases)
    flipped = [replace(p, rejected=flip_verdict(p.chosen), kind="flipped") for p in pairs]
    return TrainingData(
        pairs=pairs, flipped=flipped,
        gold=[(p.case, p.chosen) for p in pairs],
        judgements={c.case_id: Judgement(c.case_id, c.truth_label, c.severity) for c in cases},
        prompts=list(cases),
    )  # fmt: skip


def _lora(policy):
    return {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_B" in n}


def _sft(policy, cases):
    """A short SFT: the policy now carries an adapter that changed its answers, enough that a
    reference with the adapter switched off (the old bug) could not give 0 at step 0."""
    examples = [(c, verdict_text(c, c.truth_label)) for c in cases]
    train_sft(policy, examples, _config().sft)
    enc = policy.encode([c for c, _ in examples], [t for _, t in examples])
    tokens = int((enc["labels"] != -100).sum())
    with torch.no_grad():
        sft_loss = float(policy.model(**enc).loss)
        with policy.model.disable_adapter():
            base_loss = float(policy.model(**enc).loss)
    # DPO's beta (0.1) times the summed log-prob gap per answer, far above the 1e-5 tested below
    assert 0.1 * abs(sft_loss - base_loss) * tokens / len(examples) > 1e-2


def test_dpo_after_sft_starts_at_its_reference_and_trains_the_adapter(verdict_policy):
    cases = make_cases(8, seed=1)
    _sft(verdict_policy, cases)
    before = _lora(verdict_policy)
    report = train_dpo(verdict_policy, _data(cases), _config())
    assert report["steps"] >= 2 and report["reference"] == "starting model"
    first = report["history"][0]
    # Reference = the SFT model: at step 0 the policy's and the reference's log-probs agree.
    assert first["rewards/chosen"] == pytest.approx(0.0, abs=1e-5)
    assert first["rewards/margins"] == pytest.approx(0.0, abs=1e-5)
    after = _lora(verdict_policy)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert adapters.policy_adapters(verdict_policy.model) == ["default"]  # TRL's "ref" is gone


def test_grpo_after_sft_starts_at_kl_zero_with_the_clinical_reward(verdict_policy):
    cases = make_cases(8, seed=2)
    _sft(verdict_policy, cases)
    report = train_grpo(verdict_policy, _data(cases), None, _config())
    assert report["steps"] == 2 and report["judged"] == len(cases)
    first = report["history"][0]
    assert first["kl"] == pytest.approx(0.0, abs=1e-6)
    assert any("rewards/clinical" in k for k in first)  # the clinicians' judgements scored it
    assert adapters.policy_adapters(verdict_policy.model) == ["default"]


def test_dpo_without_an_adapter_gets_a_fresh_one(verdict_policy):
    cases = make_cases(8, seed=3)
    report = train_dpo(verdict_policy, _data(cases), _config())
    assert report["history"][0]["rewards/margins"] == pytest.approx(0.0, abs=1e-5)
    assert any(p.abs().sum() > 0 for p in _lora(verdict_policy).values())  # B starts at zero


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
    for i, c in enumerate(make_cases(8, seed=9)):
        path = folder / f"{i}.png"
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype("uint8")).save(path)
        out.append(replace(c, image=str(path)))
    return out


def test_dpo_and_grpo_run_for_a_vlm_with_the_image(vlm, image_cases):
    data = _data(image_cases)
    dpo = train_dpo(vlm, data, _config())
    assert dpo["vision"] and dpo["steps"] >= 1
    assert dpo["history"][0]["rewards/margins"] == pytest.approx(0.0, abs=1e-5)
    grpo = train_grpo(vlm, data, None, _config())
    assert grpo["vision"] and grpo["steps"] == 2
    assert grpo["history"][0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert adapters.policy_adapters(vlm.model) == ["default"]
