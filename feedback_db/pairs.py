"""What one rating teaches: the single rule behind the TRL pairs, the KTO rows and the
contradiction check. Pure functions, no database.

A rating judges two answers, A and B, against the clinician's own true verdict. ``judgements``
turns it into (text, desirable) judgements:

- ``a`` better: A desirable, B undesirable; ``b`` better: the reverse.
- ``tie``: both answers are equally good or equally bad; they are desirable when their verdict word
  is the clinician's true verdict, undesirable otherwise (a tie between a right and a wrong verdict
  is a contradiction, refused when the rating is made).
- ``both_wrong``: both undesirable.
- A rationale is the clinician's gold answer, ``"<true_label> - <rationale>"``: it is desirable and,
  with ``a``/``b``, it replaces the preferred answer (the clinician rewrote it).

The TRL pairs are every (desirable, undesirable) combination, the KTO rows every judgement, so
the two exports can never disagree: a text that is "chosen" in one is never undesirable in the
other. A text judged twice keeps its first judgement; identical texts teach nothing.

``contradiction`` is the check the rating panel and the store run before a rating is saved: the
preferred answer must carry the clinician's true verdict word.
"""

from __future__ import annotations

import re

# The verdict word on the first non-empty line (as core.clinical.verdicts parses it; a test in tests/app
# keeps the two equal, since feedback_db cannot import core).
VERDICT_RE = re.compile(
    r"^[\s*_>`#\"']*(?P<word>error|correct)\b[\s*_`\"']*(?:[-\u2013\u2014:]+\s*(?P<reason>.*))?$",
    re.IGNORECASE,
)


def parse_label(text: str) -> tuple[str, str]:
    """(``ERROR`` | ``CORRECT`` | ``UNPARSEABLE``, reason) of a verdict text."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    match = VERDICT_RE.match(first)
    if not match:
        return "UNPARSEABLE", text.strip()
    return match.group("word").upper(), (match.group("reason") or "").strip().strip("*_`\"' ")


def gold_answer(true_label: str, rationale: str) -> str:
    """The clinician's answer in the verdict format the models write."""
    return f"{true_label} - {rationale.strip()}"


def contradiction(preference: str, true_label: str, text_a: str, text_b: str) -> str | None:
    """Why the rating contradicts itself, in words, or None when it does not.

    ``a``/``b``: the preferred answer's verdict word must be the true verdict. ``tie``: the two
    answers must agree on the verdict word when one of them is right (a tie between a right and a
    wrong verdict). ``both_wrong`` never contradicts (both may have the right word for the wrong
    reason).
    """
    label_a, label_b = parse_label(text_a)[0], parse_label(text_b)[0]
    if preference in ("a", "b"):
        side, label = ("A", label_a) if preference == "a" else ("B", label_b)
        if label != true_label:
            said = "an unreadable verdict" if label == "UNPARSEABLE" else label
            return (
                f"{side} is marked better but says {said}, while your true verdict is {true_label}"
            )
    if preference == "tie" and (label_a == true_label) != (label_b == true_label):
        right = "A" if label_a == true_label else "B"
        return (
            f"a tie between a right and a wrong verdict: only {right} says {true_label}, "
            f"your true verdict"
        )
    return None


def judgements(
    preference: str, true_label: str, rationale: str | None, text_a: str, text_b: str
) -> list[tuple[str, bool]]:
    """The (text, desirable) judgements a rating makes, in order (see the module docstring)."""
    gold = gold_answer(true_label, rationale) if rationale and rationale.strip() else None
    out: list[tuple[str, bool]] = []
    if preference == "a":
        out = [(gold or text_a, True), (text_b, False)]
    elif preference == "b":
        out = [(gold or text_b, True), (text_a, False)]
    elif preference == "tie":
        out = [
            (text_a, parse_label(text_a)[0] == true_label),
            (text_b, parse_label(text_b)[0] == true_label),
        ]
        if gold is not None:
            out.insert(0, (gold, True))
    elif preference == "both_wrong":
        out = [(text_a, False), (text_b, False)]
        if gold is not None:
            out.insert(0, (gold, True))
    seen: set[str] = set()
    unique: list[tuple[str, bool]] = []
    for text, good in out:
        key = text.strip()
        if key and key not in seen:
            seen.add(key)
            unique.append((text, good))
    return unique


def derive_pairs(
    preference: str, true_label: str, rationale: str | None, text_a: str, text_b: str
) -> list[tuple[str, str]]:
    """The (chosen, rejected) pairs a rating yields: every desirable text over every undesirable one."""
    judged = judgements(preference, true_label, rationale, text_a, text_b)
    good = [t for t, ok in judged if ok]
    bad = [t for t, ok in judged if not ok]
    return [(c, r) for c in good for r in bad]
