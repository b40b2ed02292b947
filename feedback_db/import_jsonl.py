"""Import ``expert_feedback.jsonl`` (ratings from another workstation) into the store.

Every line is checked (feedback_db.feedback_lines, then: the case is known, the reviewer is known
or may be created, the images it names are beside the file, the modality agrees). Bad lines are
reported by number; the good ones are imported, all in one transaction.

How lines become rows: the lines of one rating (same case, reviewer and ``rated_at``) make one
rating row, keeping the original time. Its two verdicts become predictions of the model version
``imported`` (registered on first use, backend ``import``), A = the chosen text, B = the rejected
one, labels parsed from the text:

- one line: preference ``a`` (the chosen verdict was better); with ``"chosen_source":
  "rationale"`` the chosen text is the clinician's rewritten answer and becomes the rationale;
- two lines with the same chosen text and different rejected ones: the clinician's correction
  over two wrong verdicts, preference ``both_wrong`` with the chosen text's reason as rationale,
  A and B the two rejected texts.

So exporting the imported ratings gives back the same pairs. A rating already in the store (same
reviewer, case and time) is skipped, so importing a file twice changes nothing; an imported rating
older than the reviewer's standing rating on the case is refused (it would overrule a newer
judgement).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from feedback_db.convert import aware
from feedback_db.errors import StoreError
from feedback_db.export import ProgressLike
from feedback_db.feedback_lines import FeedbackLine, parse_label, parse_line
from feedback_db.models import CaseRow, ModelVersionRow, PredictionRow, RatingRow, ReviewerRow
from feedback_db.pairs import gold_answer
from feedback_db.ratings import write_rating
from feedback_db.records import RatingIn
from feedback_db.store import Store, chunks

IMPORTED_VERSION = "imported"


@dataclass(frozen=True)
class LineError:
    """A rejected line: ``file:line: message``."""

    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class ImportResult:
    lines: int
    ratings: int
    skipped: int
    reviewers_created: list[str] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of the non-blank lines; text None for a line that is not UTF-8."""
    with path.open("rb") as fh:
        for number, data in enumerate(fh, start=1):
            if number == 1 and data.startswith(b"\xef\xbb\xbf"):  # a BOM from Windows editors
                data = data[3:]
            try:
                raw = data.decode("utf-8")
            except UnicodeDecodeError:
                yield number, None
                continue
            if raw.strip():
                yield number, raw.rstrip("\r\n")


def looks_like_feedback(path: Path) -> bool:
    """True when ``path`` is a JSONL whose first line that parses has ``chosen`` and ``rejected``."""
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return False
    try:
        for _, raw in _lines(path):
            try:
                data = json.loads(raw) if raw is not None else None
            except json.JSONDecodeError:
                continue
            if data is None:
                continue
            return isinstance(data, dict) and "chosen" in data and "rejected" in data
    except OSError:
        return False
    return False


def _imported_version(s: Session) -> int:
    vid = s.scalar(select(ModelVersionRow.id).where(ModelVersionRow.name == IMPORTED_VERSION))
    if vid is not None:
        return int(vid)
    row = ModelVersionRow(
        name=IMPORTED_VERSION, backend="import", base_model="expert_feedback.jsonl", active=False,
        note="verdicts of ratings imported from expert_feedback.jsonl files",
    )
    s.add(row)
    s.flush()
    return row.id


def _predictions(s: Session, vid: int, case_id: str, texts: tuple[str, str]) -> tuple[int, int]:
    """Store verdicts A and B of an imported rating; return their ids."""
    rows = []
    for text in texts:
        label, reason = parse_label(text)
        rows.append(PredictionRow(version_id=vid, case_id=case_id, label=label, reason=reason, text=text))
    s.add_all(rows)
    s.flush()
    return rows[0].id, rows[1].id


_Key = tuple[str, int]  # (case id, reviewer id)


def _histories(s: Session, case_ids: list[str]) -> tuple[dict[_Key, set[datetime]], dict[_Key, tuple[int, datetime]]]:
    """Per (case, reviewer id): the times of every rating row, and the standing row (id, time).

    The chain of one reviewer on one case is linear (each new row supersedes the standing one),
    so its standing row is the one with the highest id.
    """
    times: dict[_Key, set[datetime]] = defaultdict(set)
    last: dict[_Key, tuple[int, datetime]] = {}
    for chunk in chunks(case_ids):
        stmt = select(RatingRow.id, RatingRow.case_id, RatingRow.reviewer_id, RatingRow.created_at).where(
            RatingRow.case_id.in_(chunk)).order_by(RatingRow.id)
        for rid, cid, reviewer_id, created in s.execute(stmt):
            key = (cid, reviewer_id)
            times[key].add(created)
            last[key] = (rid, created)
    return times, last


def _as_rating(group: list[FeedbackLine]) -> tuple[str, str | None, str, str]:
    """(preference, rationale, text A, text B) of one rating's lines. Raises ValueError."""
    if len(group) == 1:
        line = group[0]
        label, reason = parse_label(line.chosen)
        # The clinician's own rewritten answer, kept as the rating's rationale (so it stays gold).
        if line.chosen_source == "rationale" and reason and gold_answer(line.true_label, reason) == line.chosen:
            return "a", reason, line.chosen, line.rejected
        return "a", None, line.chosen, line.rejected
    first, second = group[0], group[1]
    label, reason = parse_label(first.chosen)
    if len(group) == 2 and first.chosen == second.chosen and first.rejected != second.rejected and label == first.true_label and reason:
        return "both_wrong", reason, first.rejected, second.rejected
    raise ValueError(
        f"{len(group)} pairs share case, reviewer and rated_at (lines "
        f"{', '.join(str(g.line) for g in group)}) but are not one correction over two verdicts"
    )


def import_feedback(
    store: Store,
    path: Path,
    *,
    create_reviewers: bool = False,
    reviewer_role: str = "imported",
    progress: ProgressLike | None = None,
) -> ImportResult:
    """Import the ratings in ``path``; see the module docstring for how lines become rows.

    Args:
        store: the store to import into.
        create_reviewers: create reviewers the store does not know (with ``reviewer_role``);
            otherwise their lines are rejected.
        progress: gets ``update("import", lines_done, lines_total)``.

    Raises:
        StoreError: the file cannot be read, or a database error (then nothing is imported).
    """
    path = Path(path)
    folder = path.parent
    errors: list[LineError] = []
    parsed: list[FeedbackLine] = []
    try:
        raw_lines = list(_lines(path))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    total = len(raw_lines)
    for i, (number, raw) in enumerate(raw_lines, start=1):
        try:
            if raw is None:
                raise ValueError("not UTF-8 text")
            item = parse_line(number, raw)
            missing = [p for p in item.images if not (folder / p).is_file()]
            if missing:
                raise ValueError(f"image not found beside the file: {missing[0]}")
            parsed.append(item)
        except ValueError as exc:
            errors.append(LineError(path, number, str(exc)))
        if progress is not None and i % 1000 == 0:
            progress.update("check", i, total)

    created: list[str] = []
    ratings = skipped = 0
    with store.sessions.scope(f"importing {path.name}", write=True) as s:
        known_cases: dict[str, str] = {}
        for chunk in chunks(sorted({p.case_id for p in parsed})):
            rows = s.execute(select(CaseRow.case_id, CaseRow.modality).where(CaseRow.case_id.in_(chunk)))
            known_cases.update((cid, modality) for cid, modality in rows)
        reviewers = {n: i for i, n in s.execute(select(ReviewerRow.id, ReviewerRow.name))}
        groups: dict[tuple[str, str, str], list[FeedbackLine]] = defaultdict(list)
        for item in parsed:
            if item.case_id not in known_cases:
                errors.append(LineError(path, item.line, f"unknown case {item.case_id!r} (import its cases first)"))
            elif item.modality is not None and item.modality != known_cases[item.case_id]:
                errors.append(LineError(path, item.line, f"case {item.case_id!r} is {known_cases[item.case_id]!r} here, "
                                        f"{item.modality!r} in the file"))
            elif item.reviewer not in reviewers and not create_reviewers:
                errors.append(LineError(path, item.line, f"unknown reviewer {item.reviewer!r} (allow creating reviewers to import it)"))
            else:
                groups[(item.case_id, item.reviewer, item.rated_at.isoformat())].append(item)
        vid: int | None = None
        times, last = _histories(s, sorted({g[0].case_id for g in groups.values()}))
        ordered = sorted(groups.values(), key=lambda g: (g[0].rated_at, g[0].line))
        for done, group in enumerate(ordered, start=1):
            head = group[0]
            try:
                preference, rationale, text_a, text_b = _as_rating(group)
            except ValueError as exc:
                errors.extend(LineError(path, g.line, str(exc)) for g in group)
                continue
            if head.reviewer not in reviewers:
                row = ReviewerRow(name=head.reviewer, role=reviewer_role)
                s.add(row)
                s.flush()
                reviewers[head.reviewer] = row.id
                created.append(head.reviewer)
            rid = reviewers[head.reviewer]
            key, when = (head.case_id, rid), head.rated_at.replace(tzinfo=None)
            if when in times[key]:
                skipped += 1
                continue
            if key in last and aware(last[key][1]) > head.rated_at:
                errors.extend(LineError(path, g.line, f"{head.reviewer} rated case {head.case_id} again later "
                                        f"({aware(last[key][1]):%Y-%m-%d %H:%M:%S}Z); the older rating is not applied")
                              for g in group)
                continue
            vid = vid if vid is not None else _imported_version(s)
            id_a, id_b = _predictions(s, vid, head.case_id, (text_a, text_b))
            rating = RatingIn(
                case_id=head.case_id, reviewer_id=rid, prediction_a_id=id_a, prediction_b_id=id_b,
                preference=preference, true_label=head.true_label, severity=head.severity,
                rationale=rationale, margin=head.margin,
            )
            saved = write_rating(s, rating, head.reviewer, (text_a, text_b), last[key][0] if key in last else None,
                                 head.rated_at)
            times[key].add(when)
            last[key] = (saved.id, when)
            ratings += 1
            if progress is not None and done % 1000 == 0:
                progress.update("import", done, len(ordered))
    if progress is not None:
        progress.update("import", len(groups), len(groups))
    errors.sort(key=lambda e: e.line)
    return ImportResult(total, ratings, skipped, created, errors)
