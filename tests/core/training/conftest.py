"""Fixtures for the trainers: the demo tokenizer, a tiny Llama, synthetic cases and pairs.

``verdict_policy`` is a tiny causal LM briefly fitted (in-process, once per session) to answer
``ERROR - ...`` or ``CORRECT - ...`` at random, regardless of the case: a policy that writes
well-formed verdicts but has learned nothing about cases, so what RL adds is measurable.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch

from core.cases.records import Case
from core.clinical.knowledge import default_knowledge
from core.training.data import PreferencePair
from core.training.text_policy import CausalLMPolicy


def make_cases(n: int, seed: int = 0, split: str = "train") -> list[Case]:
    """Balanced error/correct cases from the knowledge table (text-visible errors)."""
    kb = default_knowledge()
    rng = random.Random(seed)
    findings = [f for fs in kb.findings.values() for f in fs if f.acceptable]
    treatments = list(kb.treatments.values())
    out = []
    for i in range(n):
        f = rng.choice(findings)
        if i % 2 == 0:
            t = kb.treatments[rng.choice(f.acceptable)]
            err, sev = "none", None
        else:
            t = rng.choice([t for t in treatments if t.name not in f.acceptable])
            err, sev = "treatment_mismatch", t.severity
        out.append(Case(f"case-{seed}-{i}", f.modality, "", f.name, t.name, err, sev, split=split))
    return out


def verdict_text(case: Case, label: str) -> str:
    if label == "ERROR":
        return f"ERROR - {case.treatment} is not an accepted treatment for {case.finding}"
    return f"CORRECT - {case.treatment} fits {case.finding}"


def make_pairs(cases: list[Case]) -> list[PreferencePair]:
    """Pairs whose chosen answer is the truth and the rejected one the opposite label."""
    out = []
    for c in cases:
        truth = c.truth_label
        other = "CORRECT" if truth == "ERROR" else "ERROR"
        out.append(
            PreferencePair(
                c, verdict_text(c, truth), verdict_text(c, other), true_label=truth,
                severity=c.severity,
            )
        )  # fmt: skip
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: tiny models gain nothing from more, and on a shared 2-core machine
    OpenMP spin-waiting against other processes makes them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer():
    from core.demo.tokenizer import build_demo_tokenizer

    return build_demo_tokenizer()


def tiny_llama(tokenizer, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg)


@pytest.fixture
def tiny_policy(tokenizer):
    return CausalLMPolicy(tiny_llama(tokenizer), tokenizer)


@pytest.fixture(scope="session")
def _verdict_weights(tokenizer):
    """Fit a tiny Llama to write a random verdict line (about 5 s on a CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model = tiny_llama(tokenizer, seed=1)
    policy = CausalLMPolicy(model, tokenizer)
    cases = make_cases(64, seed=11)
    rng = random.Random(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        batch = rng.sample(cases, 16)
        texts = [verdict_text(c, rng.choice(["ERROR", "CORRECT"])) for c in batch]
        enc = policy.encode(batch, texts)
        loss = model(**enc).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    torch.set_num_threads(before)
    return copy.deepcopy(model.state_dict())


@pytest.fixture
def verdict_policy(tokenizer, _verdict_weights):
    model = tiny_llama(tokenizer, seed=1)
    model.load_state_dict(_verdict_weights)
    model.eval()
    return CausalLMPolicy(model, tokenizer)
