"""PPO: the reference is the policy with PPO's adapter off, learning raises the clinical reward
with the KL held at its target, and the clinical reward comes from clinicians' judgements only."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from core.runtime.progress import Canceled, Progress
from core.training.judgement import Judgement
from core.training.ppo import PPOTrainer, clinical_rewards
from core.training.ppo_config import PPOConfig

from .conftest import make_cases

# A 64-wide model learns slowly through attention-only LoRA; LoRA on the output layer too lets
# the tests see learning in a dozen steps. The real defaults stay the plan's q/v/o.
FAST_R = 16  # PPOConfig.lora_r default
FAST = dict(
    batch_size=16,
    mini_batch_size=8,
    max_new_tokens=3,
    learning_rate=1e-3,
    target_modules=("q_proj", "v_proj", "o_proj", "lm_head"),
    clinical_weight=0.0,
    target_kl=1.0,
    init_kl_coef=0.5,
)


def starts_with_error(cases, texts):
    return [1.0 if t.startswith("ERROR") else -1.0 for t in texts]


def test_config_is_validated():
    with pytest.raises(ValueError):
        PPOConfig(mini_batch_size=32, batch_size=16)
    with pytest.raises(ValueError):
        PPOConfig(target_kl=0)
    with pytest.raises(ValueError):
        PPOConfig(contradiction_penalty=-1.0)


def test_reference_equals_policy_at_init_and_with_adapter_disabled(verdict_policy):
    trainer = PPOTrainer(verdict_policy, PPOConfig(**FAST), reward_fn=starts_with_error)
    batch = trainer.rollout(make_cases(8, seed=5))
    with torch.no_grad():
        logp, values = trainer.forward(batch, with_values=True)
    ref = trainer.reference_logprobs(batch)
    assert torch.equal(logp * batch.answer_mask, ref * batch.answer_mask)
    assert values.shape == logp.shape == batch.answer_ids.shape
    # Move the adapter: the policy changes, the reference (no adapter active) does not.
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
        moved, _ = trainer.forward(batch, with_values=False)
    assert not torch.allclose(moved, logp)
    assert torch.equal(trainer.reference_logprobs(batch), ref)


def _judged_task():
    """Prompts a clinician judged as critical errors, and as many no clinician judged whose
    case fields claim the opposite (a consistent case): PPO must learn from the judgements, and
    the unjudged prompts get no clinical reward at all."""
    errors = [c for c in make_cases(96, seed=7) if c.is_error]
    judged = {c.case_id: Judgement(c.case_id, "ERROR", "critical") for c in errors[:36]}
    unjudged = [replace(c, error_type="none", severity=None) for c in errors[36:]]
    return errors[:36] + unjudged, judged


def test_ppo_raises_the_clinical_reward_and_holds_kl_at_its_target(verdict_policy):
    events = []
    cfg = PPOConfig(steps=24, **{**FAST, "init_kl_coef": 0.2, "clinical_weight": 1.0})
    cases, judged = _judged_task()
    trainer = PPOTrainer(verdict_policy, cfg, judgements=judged, progress=Progress(events.append))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    report = trainer.train(cases)
    rows = report.history
    clinical = [r["clinical"] for r in rows if "clinical" in r]
    kls = [r["kl"] for r in rows]
    last_third = kls[-len(kls) // 3 :]
    assert report.steps == 24
    assert all(r["judged"] < cfg.batch_size for r in rows)  # unjudged prompts are in every batch
    # Saying ERROR on a judged critical error scores +3, missing it -4: from about -0.5 to +3.
    assert sum(clinical[:3]) / 3 < 1.0, clinical
    assert sum(clinical[-8:]) / 8 > 2.5, clinical
    assert all(0.5 * cfg.target_kl <= k <= 1.5 * cfg.target_kl for k in last_third), kls
    assert any(
        not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters() if n in before
    )
    ppo_events = [e for e in events if e.stage == "ppo" and e.step > 0]
    assert [e.step for e in ppo_events] == list(range(1, 25))
    assert all(e.kl is not None and e.reward is not None and e.loss is not None for e in ppo_events)
    assert "36 judged by a clinician" in events[0].message


def _val_score(policy, val):
    """Retrain's checkpoint score: the mean clinical reward of greedy verdicts on val (the text
    policy has no ``predict``, so its greedy answers are parsed here)."""
    from core.clinical.rewards import clinical_reward
    from core.clinical.verdicts import parse_verdict

    def score():
        _, texts = policy.generate(val, do_sample=False, max_new_tokens=3)
        return sum(
            clinical_reward(parse_verdict(t)[0], c) for c, t in zip(val, texts, strict=True)
        ) / len(val)

    return score


def test_val_checks_keep_the_best_step_and_the_start_when_ppo_only_hurts(verdict_policy):
    """Rewarded for ERROR whatever the case, PPO raises false alarms: on val (correct cases)
    every check is worse than the start, so the policy ends exactly as it started. Rewarded
    for the clinicians' verdicts (critical errors), it gets better on val (critical errors),
    and a later check is kept."""
    cases, judged = _judged_task()
    pool = make_cases(96, seed=11)
    val_ok = [c for c in pool if not c.is_error][:24]
    val_err = [c for c in pool if c.is_error][:24]
    score = _val_score(verdict_policy, val_ok)
    start_logits = _logits(verdict_policy, val_ok[:4])
    start = score()
    events = []
    cfg = PPOConfig(steps=10, val_every=5, **FAST)
    hurt = PPOTrainer(verdict_policy, cfg, reward_fn=starts_with_error,
                      progress=Progress(events.append))  # fmt: skip
    report = hurt.train(cases, checkpoint_score=score)
    assert [c["step"] for c in report.checks] == [0, 5, 10]
    assert report.checks[0]["score"] == pytest.approx(start)
    assert all(c["score"] < start for c in report.checks[1:]), report.checks
    assert report.kept_step == 0 and report.steps == 10
    # the weights PPO trained are back where they started: the policy is the starting model
    assert torch.equal(_logits(verdict_policy, val_ok[:4]), start_logits)
    assert score() == pytest.approx(start)
    assert any("val check at step 5" in (e.message or "") for e in events)

    score = _val_score(verdict_policy, val_err)
    start = score()
    cfg = PPOConfig(steps=12, val_every=4, **{**FAST, "init_kl_coef": 0.2, "clinical_weight": 1.0})
    helped = PPOTrainer(verdict_policy, cfg, judgements=judged, reference="current")
    report = helped.train(cases, checkpoint_score=score)
    scores = [c["score"] for c in report.checks]
    assert max(scores) > start and report.kept_step > 0, report.checks
    best = max(scores)
    assert report.kept_step == max(int(c["step"]) for c in report.checks if c["score"] == best)
    assert score() == pytest.approx(best)


def test_no_val_checks_when_val_every_is_zero(verdict_policy):
    calls = []
    cfg = PPOConfig(steps=2, val_every=0, **FAST)
    trainer = PPOTrainer(verdict_policy, cfg, reward_fn=starts_with_error)
    report = trainer.train(make_cases(16, seed=3), checkpoint_score=lambda: calls.append(1) or 0.0)
    assert calls == [] and report.checks == [] and report.kept_step == 2
    with pytest.raises(ValueError):
        PPOConfig(val_every=-1)


def test_cancel_stops_at_the_next_step(verdict_policy):
    def cancel_after_two(event):
        if event.stage == "ppo" and event.step == 2:
            progress.cancel()

    progress = Progress(cancel_after_two)
    trainer = PPOTrainer(
        verdict_policy, PPOConfig(steps=10, **FAST), reward_fn=starts_with_error, progress=progress
    )
    with pytest.raises(Canceled):
        trainer.train(make_cases(16, seed=3))


def test_clinical_rewards_come_from_judgements_not_from_case_fields():
    cases = make_cases(2, seed=1)  # one correct, one error by their own fields
    judged = {
        cases[0].case_id: Judgement(cases[0].case_id, "CORRECT"),
        cases[1].case_id: Judgement(cases[1].case_id, "ERROR", "critical"),
    }
    texts = ["CORRECT - fine", "nonsense"]
    got = clinical_rewards(cases, texts, judged)
    assert got == [pytest.approx(2.5), pytest.approx(-4.0)]  # validated; a critical miss
    scrambled = [replace(c, error_type="treatment_mismatch", severity="moderate") for c in cases]
    assert clinical_rewards(scrambled, texts, judged) == got
    assert clinical_rewards(cases, texts) == [0.0, 0.0]  # nobody judged: no clinical reward


def _with_sft_adapter(policy, seed: int = 3):
    """The policy as SFT leaves it: a trained (here: randomly moved) CAUSAL_LM LoRA on q/v/o."""
    from peft import get_peft_model

    from core.training.common import lora_config

    policy.model = get_peft_model(
        policy.model, lora_config(8, 16, 0.1, ("q_proj", "v_proj", "o_proj"), "CAUSAL_LM")
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    policy.model.eval()
    return policy


def _logits(policy, cases):
    with torch.no_grad():
        return policy.model(**policy.encode(cases)).logits


def test_after_sft_the_reference_is_the_sft_model(verdict_policy):
    """reference='current': PPO trains a fresh adapter on top of the frozen SFT adapter; at step 0
    the policy equals the reference exactly (KL 0), and the reference is SFT's, not the base's."""
    policy = _with_sft_adapter(verdict_policy)
    cases = make_cases(8, seed=5)
    sft_logits = _logits(policy, cases)
    with torch.no_grad(), policy.model.disable_adapter():
        base_logits = policy.model(**policy.encode(cases)).logits
    assert not torch.allclose(sft_logits, base_logits, atol=1e-3)

    trainer = PPOTrainer(
        policy, PPOConfig(**FAST), reward_fn=starts_with_error, reference="current"
    )
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all(".ppo." in n for n in trainable)
    assert torch.equal(_logits(policy, cases), sft_logits)  # a fresh PPO adapter adds nothing
    batch = trainer.rollout(cases)
    with torch.no_grad():
        logp, _ = trainer.forward(batch, with_values=False)
    ref = trainer.reference_logprobs(batch)
    assert torch.equal(logp * batch.answer_mask, ref * batch.answer_mask)
    # Move PPO's adapter: the policy changes, the reference (still the SFT model) does not.
    with torch.no_grad():
        for name, p in trainer.model.named_parameters():
            if "lora_B.ppo" in name:
                p.add_(0.05)
        moved, _ = trainer.forward(batch, with_values=False)
    assert not torch.allclose(moved, logp)
    assert torch.equal(trainer.reference_logprobs(batch), ref)
    assert [n for n, p in trainer.model.named_parameters() if p.requires_grad] == trainable


def test_sft_then_ppo_starts_at_kl_zero_and_folds_into_one_loadable_adapter(
    verdict_policy, tokenizer, _verdict_weights, tmp_path
):
    from core.training.text_policy import CausalLMPolicy

    from .conftest import tiny_llama

    policy = _with_sft_adapter(verdict_policy)
    sft_before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_" in n}
    trainer = PPOTrainer(
        policy, PPOConfig(steps=2, **FAST), reward_fn=starts_with_error, reference="current"
    )
    report = trainer.train(make_cases(32, seed=7))
    assert report.history[0]["kl"] == 0.0  # the reference is the SFT model, not the base
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in sft_before.items())  # SFT adapter frozen
    assert any(
        not torch.equal(p, torch.zeros_like(p)) for n, p in after.items() if "lora_B.ppo" in n
    )

    cases = make_cases(8, seed=9)
    trained = _logits(policy, cases)
    trainer.fold_adapters()
    assert list(policy.model.peft_config) == ["default"]
    assert policy.model.peft_config["default"].r == 8 + FAST_R
    assert not any(p.requires_grad for n, p in policy.model.named_parameters())
    torch.testing.assert_close(_logits(policy, cases), trained, atol=1e-5, rtol=0)

    policy.save_adapter(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    base = tiny_llama(tokenizer, seed=1)
    base.load_state_dict(_verdict_weights)
    loaded = CausalLMPolicy(base.eval(), tokenizer)
    loaded.load_adapter(str(tmp_path / "adapter"))
    loaded.model.eval()
    torch.testing.assert_close(_logits(loaded, cases), trained, atol=1e-5, rtol=0)
    assert loaded.generate(cases)[1] == policy.generate(cases)[1]


def test_reference_must_be_known_and_current_needs_a_stackable_adapter(verdict_policy):
    from peft import get_peft_model

    from core.training.common import lora_config

    with pytest.raises(ValueError, match="reference must be"):
        PPOTrainer(verdict_policy, PPOConfig(**FAST), reference="sft")
    dora = lora_config(8, 16, 0.0, ("q_proj", "v_proj"), "CAUSAL_LM")
    dora.use_dora = True
    verdict_policy.model = get_peft_model(verdict_policy.model, dora)
    with pytest.raises(ValueError, match="plain LoRA"):
        PPOTrainer(verdict_policy, PPOConfig(**FAST), reference="current")
