"""Import ``expert_feedback.jsonl`` (ratings from another workstation) into the store.

Every line is checked (feedback_db.feedback_lines, then: the reviewer is known or may be created,
the images it names are beside the file, the modality agrees with the workspace's case). Bad lines
are reported by number; the good ones are imported.

How lines become rows: the lines of one rating (same case, reviewer and ``rated_at``) make one
rating row, keeping the original time. An imported rating is the other clinician's judgement of
answers this workspace never produced, so it points at no prediction and creates no model version:
it keeps the two answers as its own text (``answer_a``/``answer_b``) with its provenance (``source``:
the file's name, ``imported_at``), and is shown with that text, never in review or Compare.

- A line our export wrote carries the rating itself (``preference``, ``rationale``, ``answer_a``,
  ``answer_b``); the pairs the group holds must be exactly the ones that rating yields
  (feedback_db.pairs), so export -> import -> export gives an identical file for every kind.
- A foreign TRL line (no ``preference``) is read as "the chosen answer was better": one line is
  preference ``a`` (A = chosen, B = rejected; with ``"chosen_source": "rationale"`` the chosen text
  is the clinician's rewritten answer and becomes the rationale); two lines with the same chosen
  text and different rejected ones are a correction over two wrong answers (``both_wrong``).
- A rating whose preferred answer contradicts its true verdict is refused, as in the app.

A case the workspace lacks is created from the line (its modality, finding, treatment and the
image beside the file, copied in de-identified; split ``review``), when ``workspace_root`` is
given. A rating already in the store (same reviewer, case and time) is skipped, so importing a
file twice changes nothing; one older than the reviewer's standing rating on the case is refused
(it would overrule a newer judgement). The import commits in short transactions (``batch``
ratings each), so a clinician saving a rating meanwhile waits at most one of them.
"""

from __future__ import annotations

import re
import time
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
from feedback_db.feedback_lines import (
    FeedbackLine,
    check_images,
    loads_line,
    parse_label,
    parse_line,
)
from feedback_db.images import ImageError, ImageExporter
from feedback_db.models import CaseRow, RatingRow, ReviewerRow, utcnow
from feedback_db.pairs import contradiction, derive_pairs, gold_answer
from feedback_db.ratings import write_rating
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
    cases_created: list[str] = field(default_factory=list)


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
                data = loads_line(raw) if raw is not None else None
            except ValueError:  # not JSON, or nested too deep
                continue
            if data is None:
                continue
            return isinstance(data, dict) and "chosen" in data and "rejected" in data
    except OSError:
        return False
    return False


_Key = tuple[str, int]  # (case id, reviewer id)


def _histories(
    s: Session, case_ids: list[str]
) -> tuple[dict[_Key, set[datetime]], dict[_Key, tuple[int, datetime]]]:
    """Per (case, reviewer id): the times of every rating row, and the standing row (id, time).

    The chain of one reviewer on one case is linear (each new row supersedes the standing one),
    so its standing row is the one with the highest id.
    """
    times: dict[_Key, set[datetime]] = defaultdict(set)
    last: dict[_Key, tuple[int, datetime]] = {}
    for chunk in chunks(case_ids):
        stmt = (
            select(RatingRow.id, RatingRow.case_id, RatingRow.reviewer_id, RatingRow.created_at)
            .where(RatingRow.case_id.in_(chunk))
            .order_by(RatingRow.id)
        )
        for rid, cid, reviewer_id, created in s.execute(stmt):
            key = (cid, reviewer_id)
            times[key].add(created)
            last[key] = (rid, created)
    return times, last


_PROMPT_FIELD = re.compile(r"^(Modality|Clinical Finding|Treatment): ?", re.MULTILINE)


def _case_fields(line: FeedbackLine) -> tuple[str, str] | None:
    """(finding, treatment) of the line: its own fields, else read from the prompt text."""
    if line.finding is not None and line.treatment is not None:
        return line.finding, line.treatment
    parts = _PROMPT_FIELD.split(line.prompt_text or "")
    fields = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    finding, treatment = fields.get("Clinical Finding"), fields.get("Treatment")
    return (finding, treatment) if finding and treatment else None


def _as_rating(group: list[FeedbackLine]) -> tuple[str, str | None, str, str]:
    """(preference, rationale, text A, text B) of one rating's lines. Raises ValueError."""
    head = group[0]
    if head.preference is not None:
        assert head.answer_a is not None and head.answer_b is not None
        for g in group[1:]:
            if (g.preference, g.rationale, g.answer_a, g.answer_b) != (
                head.preference,
                head.rationale,
                head.answer_a,
                head.answer_b,
            ):
                raise ValueError(
                    f"lines {head.line} and {g.line} share case, reviewer and rated_at but not the rating"
                )
        expected = derive_pairs(
            head.preference, head.true_label, head.rationale, head.answer_a, head.answer_b
        )
        if sorted(expected) != sorted((g.chosen, g.rejected) for g in group):
            raise ValueError(
                f"the pairs do not follow from the rating ({head.preference}, true verdict "
                f"{head.true_label}); the line was edited by hand?"
            )
        return head.preference, head.rationale, head.answer_a, head.answer_b
    if len(group) == 1:
        label, reason = parse_label(head.chosen)
        # The clinician's own rewritten answer, kept as the rating's rationale (so it stays gold).
        if (
            head.chosen_source == "rationale"
            and reason
            and gold_answer(head.true_label, reason) == head.chosen
        ):
            return "a", reason, head.chosen, head.rejected
        return "a", None, head.chosen, head.rejected
    first, second = group[0], group[1]
    label, reason = parse_label(first.chosen)
    if (
        len(group) == 2
        and first.chosen == second.chosen
        and first.rejected != second.rejected
        and label == first.true_label
        and reason
    ):
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
    workspace_root: Path | None = None,
    batch: int = 200,
    progress: ProgressLike | None = None,
) -> ImportResult:
    """Import the ratings in ``path``; see the module docstring for how lines become rows.

    Args:
        store: the store to import into.
        create_reviewers: create reviewers the store does not know (with ``reviewer_role``);
            otherwise their lines are rejected.
        workspace_root: the workspace folder; when given, cases the store lacks are created from
            the lines (images copied to ``<root>/images/``). Without it such lines are rejected.
        batch: ratings per transaction (each commit is short, so other writers never wait long).
        progress: gets ``update("import", ratings_done, ratings_total)``.

    Raises:
        StoreError: the file cannot be read, or a database error (the batches committed before
            it stay; importing the file again skips them).
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
            check_images(folder, item.images)  # inside the folder, links resolved; never outside
            parsed.append(item)
        except ValueError as exc:
            errors.append(LineError(path, number, str(exc)))
        if progress is not None and i % 1000 == 0:
            progress.update("check", i, total)

    with store.sessions.scope(f"reading cases for {path.name}") as s:
        known_cases: dict[str, str] = {}
        for chunk in chunks(sorted({p.case_id for p in parsed})):
            rows = s.execute(
                select(CaseRow.case_id, CaseRow.modality).where(CaseRow.case_id.in_(chunk))
            )
            known_cases.update((cid, modality) for cid, modality in rows)
        reviewers = {n: i for i, n in s.execute(select(ReviewerRow.id, ReviewerRow.name))}
    new_cases = _new_cases(parsed, known_cases, folder, workspace_root, errors, path)
    groups: dict[tuple[str, str, str], list[FeedbackLine]] = defaultdict(list)
    for item in parsed:
        if item.case_id not in known_cases and item.case_id not in new_cases:
            continue  # reported by _new_cases
        modality = known_cases.get(item.case_id) or new_cases[item.case_id].modality
        if item.modality is not None and item.modality != modality:
            errors.append(
                LineError(
                    path,
                    item.line,
                    f"case {item.case_id!r} is {modality!r} here, {item.modality!r} in the file",
                )
            )
        elif item.reviewer not in reviewers and not create_reviewers:
            errors.append(
                LineError(
                    path,
                    item.line,
                    f"unknown reviewer {item.reviewer!r} (allow creating reviewers to import it)",
                )
            )
        else:
            groups[(item.case_id, item.reviewer, item.rated_at.isoformat())].append(item)

    ratings: list[tuple[list[FeedbackLine], str, str | None, str, str]] = []
    for group in sorted(groups.values(), key=lambda g: (g[0].rated_at, g[0].line)):
        try:
            preference, rationale, text_a, text_b = _as_rating(group)
            why = contradiction(preference, group[0].true_label, text_a, text_b)
            if why is not None:
                raise ValueError(f"the rating contradicts itself: {why}")
        except ValueError as exc:
            errors.extend(LineError(path, g.line, str(exc)) for g in group)
            continue
        ratings.append((group, preference, rationale, text_a, text_b))

    created: list[str] = []
    imported = skipped = 0
    now = utcnow()
    with store.sessions.scope(f"reading rating history for {path.name}") as s:
        times, last = _histories(s, sorted({g[0].case_id for g, *_ in ratings}))
    cases_written: set[str] = set()
    for start in range(0, len(ratings), max(1, batch)):
        with store.sessions.scope(f"importing {path.name}", write=True) as s:
            for group, preference, rationale, text_a, text_b in ratings[start : start + batch]:
                head = group[0]
                if head.case_id in new_cases and head.case_id not in cases_written:
                    if s.get(CaseRow, head.case_id) is None:
                        s.add(new_cases[head.case_id].row())
                        s.flush()
                    cases_written.add(head.case_id)
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
                    errors.extend(
                        LineError(
                            path,
                            g.line,
                            f"{head.reviewer} rated case {head.case_id} again later "
                            f"({aware(last[key][1]):%Y-%m-%d %H:%M:%S}Z); the older rating is not applied",
                        )
                        for g in group
                    )
                    continue
                fields = {
                    "case_id": head.case_id,
                    "reviewer_id": rid,
                    "prediction_a_id": None,
                    "prediction_b_id": None,
                    "preference": preference,
                    "true_label": head.true_label,
                    "severity": head.severity,
                    "rationale": rationale,
                    "margin": head.margin,
                    "source": path.name,
                    "imported_at": now,
                }
                saved = write_rating(
                    s,
                    None,
                    head.reviewer,
                    (text_a, text_b),
                    last[key][0] if key in last else None,
                    head.rated_at,
                    fields=fields,
                )
                times[key].add(when)
                last[key] = (saved.id, when)
                imported += 1
        if progress is not None:
            progress.update("import", min(start + batch, len(ratings)), len(ratings))
        time.sleep(0.005)  # between batches, let a waiting writer (a clinician's rating) in
    if progress is not None:
        progress.update("import", len(ratings), len(ratings))
    errors.sort(key=lambda e: e.line)
    return ImportResult(
        total,
        imported,
        skipped,
        created,
        errors,
        cases_created=sorted(cases_written & set(new_cases)),
    )


@dataclass
class _NewCase:
    case_id: str
    modality: str
    image: str
    finding: str
    treatment: str

    def row(self) -> CaseRow:
        return CaseRow(
            case_id=self.case_id,
            modality=self.modality,
            image=self.image,
            finding=self.finding,
            treatment=self.treatment,
            split="review",
            meta={"imported_from": "expert_feedback.jsonl"},
        )


def _new_cases(
    parsed: list[FeedbackLine],
    known: dict[str, str],
    folder: Path,
    root: Path | None,
    errors: list[LineError],
    path: Path,
) -> dict[str, _NewCase]:
    """The cases the lines name that the store lacks, built from the lines (images copied in)."""
    out: dict[str, _NewCase] = {}
    bad: set[str] = set()
    exporter = ImageExporter(root, folder) if root is not None else None
    for item in parsed:
        cid = item.case_id
        if cid in known or cid in out or cid in bad:
            continue
        fields = _case_fields(item)
        reason = None
        if exporter is None:
            reason = f"unknown case {cid!r} (import its cases first, or import into a workspace)"
        elif item.modality is None or fields is None:
            reason = f"unknown case {cid!r}, and the line lacks its modality, finding or treatment to create it"
        if reason is None:
            assert exporter is not None and fields is not None and item.modality is not None
            try:
                image = exporter.export(item.images[0])
            except (ImageError, OSError) as exc:
                reason = f"case {cid!r}: its image cannot be copied in: {exc}"
            else:
                out[cid] = _NewCase(cid, item.modality, image, fields[0], fields[1])
                continue
        bad.add(cid)
        errors.append(LineError(path, item.line, reason))
    # Every other line of a case that could not be created is reported too.
    reported = {e.line for e in errors}
    for item in parsed:
        if item.case_id in bad and item.line not in reported:
            errors.append(
                LineError(
                    path,
                    item.line,
                    f"case {item.case_id!r} could not be created (see its first line)",
                )
            )
    return out
