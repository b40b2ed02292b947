"""The adapters on one backbone: attach, switch (and restore), targets, stack, fold, delete."""

from __future__ import annotations

import pytest
import torch

from core.training import adapters
from core.training.text_policy import CausalLMPolicy

from .conftest import make_cases, tiny_llama


@pytest.fixture
def policy(tokenizer):
    return CausalLMPolicy(tiny_llama(tokenizer, seed=4).eval(), tokenizer)


def _logits(policy, cases):
    with torch.no_grad():
        return policy.model(**policy.encode(cases)).logits


def _lora(r=4, targets=("q_proj", "v_proj")):
    return adapters.lora(r, 2 * r, 0.0, list(targets))


def _perturb(model, name, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_B" in pname and f".{name}." in pname:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def test_attach_to_a_plain_model_changes_nothing_until_switched_in(policy):
    cases = make_cases(4, seed=1)
    plain = _logits(policy, cases)
    adapters.attach(policy, "reward", _lora())
    _perturb(policy.model, "reward", 0)
    assert adapters.is_peft(policy.model) and adapters.active_adapters(policy.model) == []
    assert torch.equal(_logits(policy, cases), plain)
    assert not any(p.requires_grad for p in policy.model.parameters())
    with adapters.using(policy.model, ["reward"], trainable=["reward"]):
        assert not torch.allclose(_logits(policy, cases), plain)
        trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
        assert trainable and all(".reward." in n for n in trainable)
    assert torch.equal(_logits(policy, cases), plain)  # back to the policy, frozen
    assert not any(p.requires_grad for p in policy.model.parameters())
    with pytest.raises(ValueError):
        adapters.attach(policy, "reward", _lora())


def test_using_restores_after_an_error_and_keeps_grad_flags(policy):
    adapters.attach(policy, "default", _lora())
    adapters.attach(policy, "reward", _lora())
    adapters.set_active(policy.model, ["default"], trainable=["default"])
    with pytest.raises(RuntimeError), adapters.using(policy.model, ["reward"]):
        assert adapters.active_adapters(policy.model) == ["reward"]
        raise RuntimeError("boom")
    assert adapters.active_adapters(policy.model) == ["default"]
    grads = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert grads and all(".default." in n for n in grads)
    assert adapters.policy_adapters(policy.model) == ["default"]
    assert adapters.free_name(policy.model, "reward") == "reward_1"


def test_delete_keeps_the_active_set_and_unwraps_when_empty(policy):
    cases = make_cases(4, seed=2)
    plain = _logits(policy, cases)
    weights = {n: p for n, p in policy.model.named_parameters()}
    adapters.attach(policy, "default", _lora())
    adapters.attach(policy, "reward", _lora())
    _perturb(policy.model, "default", 1)
    adapters.set_active(policy.model, ["default"])
    with_default = _logits(policy, cases)
    adapters.delete(policy, "reward")
    assert list(policy.model.peft_config) == ["default"]
    assert torch.equal(_logits(policy, cases), with_default)
    adapters.delete(policy, "default")
    assert not adapters.is_peft(policy.model)
    assert torch.equal(_logits(policy, cases), plain)
    # The very same parameter objects: nothing was copied on the way in or out.
    assert all(p is weights[n] for n, p in policy.model.named_parameters())


def test_stacked_adapters_fold_into_one_exactly(policy):
    cases = make_cases(4, seed=3)
    adapters.attach(policy, "default", _lora(4))
    adapters.attach(policy, "ppo", _lora(8, ("q_proj", "v_proj", "o_proj")))
    adapters.attach(policy, "reward", _lora(4))
    _perturb(policy.model, "default", 1)
    _perturb(policy.model, "ppo", 2)
    _perturb(policy.model, "reward", 3)
    assert adapters.can_stack(policy.model)
    adapters.set_active(policy.model, ["default", "ppo"])
    stacked = _logits(policy, cases)
    with adapters.using(policy.model, ["reward"]):
        reward = _logits(policy, cases)
    adapters.fold(policy.model, ["default", "ppo"])
    assert sorted(policy.model.peft_config) == ["default", "reward"]
    assert policy.model.peft_config["default"].r == 12
    assert adapters.active_adapters(policy.model) == ["default"]
    torch.testing.assert_close(_logits(policy, cases), stacked, atol=1e-5, rtol=0)
    with adapters.using(policy.model, ["reward"]):
        assert torch.equal(_logits(policy, cases), reward)  # the reward adapter untouched


def test_dora_cannot_be_stacked(policy):
    cfg = _lora()
    cfg.use_dora = True
    adapters.attach(policy, "default", cfg)
    assert not adapters.can_stack(policy.model)
    assert not adapters.can_stack(tiny_llama(policy.tokenizer))  # no adapter at all


def test_a_multimodal_models_adapters_stay_off_its_vision_tower(tmp_path):
    from core.demo.lm import build_demo_gemma3
    from core.models.backends.vlm import VLMBackend, VLMConfig

    vlm = VLMBackend(VLMConfig(model=str(build_demo_gemma3(tmp_path / "vlm")), device="cpu"))
    names = adapters.language_model_targets(vlm.model, ("q_proj", "v_proj", "o_proj"))
    assert isinstance(names, list) and names
    assert all("language_model" in n for n in names)
    vision_q = [
        n for n, _ in vlm.model.named_modules() if "vision_tower" in n and n.endswith("q_proj")
    ]
    assert vision_q  # SigLIP has q_proj too: a bare name list would have adapted it
    regex = adapters.language_model_targets(vlm.model, ("q_proj",), like=".*q_proj")
    assert isinstance(regex, str)
    adapters.attach(vlm, "ppo", adapters.lora(4, 8, 0.0, names))
    assert not adapters.image_side_adapted(vlm.model)
    inner = vlm.model.get_base_model()
    adapted = {n.rsplit(".lora_", 1)[0] for n, _ in inner.named_parameters() if "lora_" in n}
    assert adapted == set(names)
