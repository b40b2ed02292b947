"""A SIMULATED reviewer panel, for benchmarks and tests only: it rates A/B verdict pairs from the
demo's ground truth, so the whole review-and-retrain loop can run headless.

It is not a clinician and its ratings are not clinical judgements; its reviewers are named
``simulated-...`` in the store. It is the only code near training that reads ground truth (a
case's ``error_type``, ``severity`` and the demo's ``meta["shown_finding"]``), and it reads them
as a clinician reads the image: what it writes reaches training only through the store's rating
path (``Store.add_rating``, then the export), like a clinician's rating in the GUI.

The panel (``PanelConfig``): two or three reviewers with different habits (``ReviewerHabits``),
who share the review cases (``weight``), a few cases (``overlap``) rated by two of them. Each
rating:

- the reviewer's true verdict is the ground truth, except on a share ``error_rate`` of cases
  (default 5%) where it slips and says the other verdict; the rest of the rating follows what it
  believes, as a mistaken clinician's would;
- exactly one answer carries its verdict: that one is preferred (``a`` or ``b``); both do:
  ``tie``; neither: ``both_wrong``, and on a share ``rationale_rate`` of those it writes a
  corrected rationale in its own words (``style``: ``terse`` or ``explains``);
- the severity of an error is the case's (the knowledge table's), shifted by ``severity_shift``
  levels for a cautious reviewer; a slip to ERROR on a correct case is rated moderate.

Everything is drawn from ``(seed, case_id, reviewer)``: the same panel gives the same ratings
whatever the order of the cases.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.cases.records import Case
from core.clinical.knowledge import KnowledgeTable, default_knowledge
from core.clinical.verdicts import Label, Verdict
from core.training.data import PreferencePair, RatedCase, training_case

ROLE = "simulated"
SEVERITY_LEVELS = ("moderate", "high", "critical")
STYLES = ("terse", "explains")


@dataclass(frozen=True)
class ReviewerHabits:
    """One simulated reviewer's habits."""

    name: str = field(metadata={"help": "reviewer name in the store (starts with 'simulated-')"})
    weight: float = field(default=1.0, metadata={"help": "share of the cases this reviewer rates"})
    rationale_rate: float = field(
        default=0.5, metadata={"help": "share of both-wrong cases given a corrected rationale"}
    )
    style: str = field(
        default="terse", metadata={"help": "wording of rationales: terse | explains"}
    )
    severity_shift: int = field(
        default=0, metadata={"help": "levels added to an error's severity (1: a cautious rater)"}
    )
    error_rate: float | None = field(
        default=None, metadata={"help": "this reviewer's slip rate (None: the panel's)"}
    )

    def __post_init__(self) -> None:
        if not self.name.startswith("simulated-"):
            raise ValueError(f"a simulated reviewer's name starts with 'simulated-': {self.name!r}")
        if self.weight <= 0 or not 0.0 <= self.rationale_rate <= 1.0:
            raise ValueError("weight must be positive and rationale_rate in [0, 1]")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        if self.error_rate is not None and not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be in [0, 1]")


DEFAULT_PANEL: tuple[ReviewerHabits, ...] = (
    ReviewerHabits("simulated-dr-brief", weight=0.4, rationale_rate=0.3, style="terse"),
    ReviewerHabits("simulated-dr-teacher", weight=0.35, rationale_rate=0.85, style="explains"),
    ReviewerHabits(
        "simulated-dr-cautious", weight=0.25, rationale_rate=0.5, style="terse", severity_shift=1
    ),
)


@dataclass(frozen=True)
class PanelConfig:
    """The simulated panel: who rates, how often they slip, how many cases two of them rate."""

    reviewers: tuple[ReviewerHabits, ...] = field(
        default=DEFAULT_PANEL, metadata={"help": "two or three reviewers with their habits"}
    )
    error_rate: float = field(
        default=0.05, metadata={"help": "share of cases whose true verdict a reviewer gets wrong"}
    )
    overlap: float = field(
        default=0.15, metadata={"help": "share of cases a second reviewer rates as well"}
    )
    seed: int = field(default=0, metadata={"help": "seed of every draw"})

    def __post_init__(self) -> None:
        if not 1 <= len(self.reviewers) <= 3:
            raise ValueError("the panel has one to three reviewers")
        if len({r.name for r in self.reviewers}) != len(self.reviewers):
            raise ValueError("reviewer names must differ")
        if not 0.0 <= self.error_rate <= 1.0 or not 0.0 <= self.overlap <= 1.0:
            raise ValueError("error_rate and overlap must be in [0, 1]")


@dataclass(frozen=True)
class SimulatedRating:
    """One simulated rating: ``preference`` is ``a``, ``b``, ``tie`` or ``both_wrong``;
    ``slipped`` says the reviewer's true verdict is not the ground truth."""

    case: Case
    reviewer: str
    preference: str
    true_label: str
    severity: str | None
    rationale: str | None
    text_a: str
    text_b: str
    slipped: bool = False


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _text(v: Verdict) -> str:
    return v.text or v.format()


def rationale(case: Case, label: str, style: str, kb: KnowledgeTable | None = None) -> str:
    """A clinician's corrected reason for ``label`` on ``case``, in the reviewer's ``style``
    (from the ground truth and, for an image-only error, the finding the image shows)."""
    kb = kb or default_knowledge()
    f = kb.finding(case.modality, case.finding)
    finding = f.name if f else case.finding
    if label == "CORRECT":
        if style == "terse":
            return f"{case.treatment} fits {finding}"
        return f"the image shows {finding} and {case.treatment} is an accepted treatment for it"
    shown = case.meta.get("shown_finding") if isinstance(case.meta, dict) else None
    mismatch = case.error_type == "treatment_mismatch" or (
        case.error_type != "unsupported_by_image"
        and kb.is_acceptable(case.modality, finding, case.treatment) is False
    )
    if mismatch:
        usual = f.acceptable[0] if f and f.acceptable else None
        if style == "terse" or usual is None:
            return f"{case.treatment} is not indicated for {finding}"
        return f"{case.treatment} is not indicated for {finding}; the usual choice would be {usual}"
    if style == "terse" or not shown or shown == finding:
        return f"the image does not show {finding}"
    return f"{finding} is not seen on this image, which shows {shown}; {case.treatment} is not indicated"


def _severity(case: Case, label: str, shift: int) -> str | None:
    if label != "ERROR":
        return None
    base = case.severity if case.severity in SEVERITY_LEVELS else "moderate"
    return SEVERITY_LEVELS[min(len(SEVERITY_LEVELS) - 1, SEVERITY_LEVELS.index(base) + shift)]


def rate(
    case: Case,
    a: Verdict,
    b: Verdict,
    habits: ReviewerHabits | None = None,
    error_rate: float = 0.0,
    seed: int = 0,
) -> SimulatedRating:
    """One reviewer's rating of verdicts ``a`` and ``b`` on ``case``.

    Raises:
        ValueError: the case has no ground truth.
    """
    h = habits or DEFAULT_PANEL[0]
    truth = case.truth_label
    if truth is None:
        raise ValueError(f"case {case.case_id}: the simulated reviewer needs ground truth")
    rng = _rng(seed, case.case_id, h.name)
    slip = rng.random() < (h.error_rate if h.error_rate is not None else error_rate)
    belief = ("CORRECT" if truth == "ERROR" else "ERROR") if slip else truth
    a_ok, b_ok = a.label is Label(belief), b.label is Label(belief)
    note = None
    if a_ok and not b_ok:
        pref = "a"
    elif b_ok and not a_ok:
        pref = "b"
    elif a_ok and b_ok:
        pref = "tie"
    else:
        pref = "both_wrong"
        if rng.random() < h.rationale_rate:
            # A slipped reviewer argues for what it believes.
            seen = case if not slip else _believed(case, belief)
            note = rationale(seen, belief, h.style)
    return SimulatedRating(
        case, h.name, pref, belief, _severity(case, belief, h.severity_shift), note,
        _text(a), _text(b), slip,
    )  # fmt: skip


def _believed(case: Case, belief: str) -> Case:
    """The case as a slipped reviewer sees it: consistent when it believes CORRECT, the stated
    finding not shown when it believes ERROR on a consistent case."""
    if belief == "CORRECT":
        return Case(case.case_id, case.modality, case.image, case.finding, case.treatment, "none")
    return Case(case.case_id, case.modality, case.image, case.finding, case.treatment,
                "unsupported_by_image", "moderate")  # fmt: skip


def assign(cases: Sequence[Case], config: PanelConfig) -> list[tuple[Case, ReviewerHabits]]:
    """Who rates what: each case one reviewer (by ``weight``), a share ``overlap`` of them a
    second, different reviewer too (cases without ground truth are skipped)."""
    people = config.reviewers
    total = sum(r.weight for r in people)
    out: list[tuple[Case, ReviewerHabits]] = []
    for c in cases:
        if c.truth_label is None:
            continue
        rng = _rng(config.seed, c.case_id, "assign")
        x, acc, first = rng.random() * total, 0.0, people[-1]
        for r in people:
            acc += r.weight
            if x < acc:
                first = r
                break
        out.append((c, first))
        others = [r for r in people if r is not first]
        if others and rng.random() < config.overlap:
            out.append((c, others[rng.randrange(len(others))]))
    return out


def rate_all(
    cases: Sequence[Case],
    a: Sequence[Verdict],
    b: Sequence[Verdict],
    config: PanelConfig | None = None,
) -> list[SimulatedRating]:
    """The panel's ratings of the A/B verdicts on ``cases`` (in ``assign``'s order)."""
    cfg = config or PanelConfig()
    by_id = {c.case_id: (va, vb) for c, va, vb in zip(cases, a, b, strict=True)}
    return [
        rate(c, *by_id[c.case_id], habits=h, error_rate=cfg.error_rate, seed=cfg.seed)
        for c, h in assign(cases, cfg)
    ]


def judged_answers(r: SimulatedRating) -> list[tuple[str, bool]]:
    """The (text, desirable) judgements of a rating, by the store's rule (``feedback_db.pairs``),
    for code that has no store (core tests and benchmarks)."""
    gold = f"{r.true_label} - {r.rationale}" if r.rationale else None
    word = lambda t: t.split(" - ", 1)[0].strip().upper()  # noqa: E731
    if r.preference == "a":
        out = [(gold or r.text_a, True), (r.text_b, False)]
    elif r.preference == "b":
        out = [(gold or r.text_b, True), (r.text_a, False)]
    elif r.preference == "tie":
        out = [
            (r.text_a, word(r.text_a) == r.true_label),
            (r.text_b, word(r.text_b) == r.true_label),
        ]
        out = ([(gold, True)] if gold else []) + out
    else:
        out = ([(gold, True)] if gold else []) + [(r.text_a, False), (r.text_b, False)]
    seen: set[str] = set()
    unique = []
    for text, good in out:
        if text.strip() and text.strip() not in seen:
            seen.add(text.strip())
            unique.append((text, good))
    return unique


def to_rated_cases(ratings: Sequence[SimulatedRating]) -> list[RatedCase]:
    """The ratings as ``core.training.data.RatedCase`` (ground truth emptied from the cases)."""
    return [
        RatedCase(
            training_case(r.case),
            r.reviewer,
            None,
            r.true_label,
            r.severity,
            tuple(judged_answers(r)),
            frozenset({f"{r.true_label} - {r.rationale}"} if r.rationale else ()),
            r.preference,
        )  # fmt: skip
        for r in ratings
    ]


def to_pairs(ratings: Sequence[SimulatedRating]) -> list[PreferencePair]:
    """The preference pairs the ratings yield (every desirable answer over every other one, the
    store's rule), on cases with their ground truth emptied."""
    out: list[PreferencePair] = []
    for r in ratings:
        judged = judged_answers(r)
        gold = f"{r.true_label} - {r.rationale}" if r.rationale else None
        for chosen, good in judged:
            if not good:
                continue
            for rejected, desirable in judged:
                if desirable:
                    continue
                out.append(PreferencePair(
                    training_case(r.case), chosen, rejected, rewritten=chosen == gold,
                    reviewer=r.reviewer, true_label=r.true_label, severity=r.severity,
                ))  # fmt: skip
    return out
