"""How one rating becomes preference pairs (chosen, rejected): the rule in one pure function.

- ``a`` better: chosen A, rejected B; ``b`` better: the reverse.
- A rationale is the clinician's gold answer, ``"<true_label> - <rationale>"``: with ``a``/``b`` it
  replaces the preferred verdict as the chosen text; with ``both_wrong`` it is chosen over each of
  A and B (two pairs).
- ``tie``, and ``both_wrong`` without a rationale, teach no preference: no pair.
- A pair whose two texts are identical teaches nothing and is dropped, as is a repeated pair.
"""

from __future__ import annotations


def gold_answer(true_label: str, rationale: str) -> str:
    """The clinician's answer in the verdict format the models write."""
    return f"{true_label} - {rationale.strip()}"


def derive_pairs(
    preference: str, true_label: str, rationale: str | None, text_a: str, text_b: str
) -> list[tuple[str, str]]:
    """The (chosen, rejected) pairs a rating yields, in order (see the module docstring)."""
    gold = gold_answer(true_label, rationale) if rationale and rationale.strip() else None
    if preference == "a":
        candidates = [(gold or text_a, text_b)]
    elif preference == "b":
        candidates = [(gold or text_b, text_a)]
    elif preference == "both_wrong" and gold is not None:
        candidates = [(gold, text_a), (gold, text_b)]
    else:
        candidates = []
    out: list[tuple[str, str]] = []
    for chosen, rejected in candidates:
        if chosen.strip() != rejected.strip() and (chosen, rejected) not in out:
            out.append((chosen, rejected))
    return out
