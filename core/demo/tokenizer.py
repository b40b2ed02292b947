"""The demo tokenizer: a small byte-level BPE trained locally on the demo's own vocabulary.

Why not a shipped tokenizer: the demo must run with no download, and an uncased WordPiece (MiniLM)
would lower-case every verdict the model writes. A byte-level BPE never meets an unknown
character, keeps case, and trained on the knowledge table and the prompt text it needs only a few
hundred merges, so the tiny models' embedding tables stay tiny. Training is deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.clinical.knowledge import KnowledgeTable, default_knowledge
from core.clinical.prompts import INSTRUCTION, MODALITY_NAMES

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"
TURN_START, TURN_END = "<start_of_turn>", "<end_of_turn>"
# Gemma 3's multimodal tokens, with Gemma's own spellings, for the tiny vlm's processor.
BOI, EOI, IMAGE = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
SPECIAL_TOKENS = (PAD, BOS, EOS, TURN_START, TURN_END, BOI, EOI, IMAGE)

# Gemma's chat format (turns between <start_of_turn>role and <end_of_turn>), text or
# content-list messages; an image part renders as the image placeholder the processor expands.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<start_of_image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def demo_corpus(knowledge: KnowledgeTable | None = None) -> list[str]:
    """The text the demo tokenizer is trained on: every word the prompts and verdicts use."""
    kb = knowledge or default_knowledge()
    lines = [INSTRUCTION, "image suggests:", "user", "model", "Modality:", "Clinical Finding:"]
    lines += ["Treatment:", "Image:", "ERROR - ", "CORRECT - ", "the image does not show"]
    lines += ["is not an accepted treatment for", "fits", "0.123456789 (0.50), (1.00)"]
    lines += list(MODALITY_NAMES.values())
    for t in kb.treatments.values():
        lines.append(t.name)
    for findings in kb.findings.values():
        for f in findings:
            lines += [f.name, f.clip_text, f.visual]
    return lines


def build_demo_tokenizer(
    knowledge: KnowledgeTable | None = None, vocab_size: int = 1024
) -> PreTrainedTokenizerFast:
    """Train the demo tokenizer and wrap it as a transformers fast tokenizer with a chat template.

    The result has bos/eos/pad, Gemma's turn markers and multimodal tokens (``boi_token``,
    ``eoi_token``, ``image_token`` attributes, as ``Gemma3Processor`` expects), left padding.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = demo_corpus(knowledge)
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    kwargs: dict[str, Any] = dict(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens={"boi_token": BOI, "eoi_token": EOI, "image_token": IMAGE},
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )
    return PreTrainedTokenizerFast(**kwargs)
