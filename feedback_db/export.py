"""Export the standing ratings as ``expert_feedback.jsonl``: TRL preference pairs or KTO rows.

The file is the contract between the store and the trainers (docs/architecture.md): ``datasets.load_dataset(
"json", data_files=...)`` feeds TRL's RewardTrainer and DPOTrainer unchanged. One line per pair::

    {"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Modality: ..."}]}],
     "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "ERROR - ..."}]}],
     "rejected": [...], "images": ["images/<sha256>.png"], "case_id": ..., "modality": ...,
     "error_type": ..., "severity": ..., "true_label": ..., "reviewer": ..., "rated_at": "...Z"}

``margin`` appears on every line when any exported rating has one (0.0 where none was given, which
is the plain pairwise loss): TRL's collator reads the margin of the first row as saying all rows
have one. Only standing ratings count (superseded and retracted ones do not). No patient data:
the reviewer is the name the clinician chose, case ``meta`` is not exported, images are stripped
of metadata (feedback_db.images). The file is written to a temporary file and renamed into place,
after the images it names.

Every line also carries the rating it comes from (``preference``, ``rationale``, ``answer_a``,
``answer_b``, ``finding``, ``treatment``), so an import restores exactly what the clinician said
and can create the case in a workspace that lacks it.

KTO (``fmt="kto"``): one unpaired row per judgement, ``completion`` and ``label``, from the same
rule as the pairs (``feedback_db.pairs.judgements``), so the two formats always agree: a tie of two
right verdicts gives two desirable rows and no pair; a "both wrong" gives two undesirable rows, and
the clinician's rationale, when given, a desirable one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select

from feedback_db.convert import aware
from feedback_db.current import is_current
from feedback_db.errors import StoreError
from feedback_db.files import atomic_writer
from feedback_db.images import ImageConverter, ImageError, ImageExporter
from feedback_db.models import CaseRow, PreferencePairRow, RatingRow, ReviewerRow
from feedback_db.pairs import judgements
from feedback_db.store import Store
from feedback_db.text import case_text

FORMATS: tuple[str, ...] = ("trl", "kto")
_BATCH = 2000


class ProgressLike(Protocol):
    """What export reports to: ``core.runtime.progress.Progress`` fits (feedback_db cannot import it)."""

    def update(self, stage: str, step: int, total: int | None = None) -> None: ...


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote. ``problems``: rows left out and why, one line each, by case."""

    path: Path
    format: str
    rows: int
    ratings: int
    images_written: int
    problems: list[str] = field(default_factory=list)


def rated_at(dt: datetime) -> str:
    """UTC time as ``2026-01-31T12:00:00.123456Z`` (the columns hold naive UTC)."""
    if dt.tzinfo is not None:
        dt = aware(dt).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds") + "Z"


def user_turn(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def assistant_turn(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def _reviewer_id(store: Store, name: str | None) -> int | None:
    if name is None:
        return None
    for r in store.reviewers():
        if r.name == name:
            return r.id
    raise StoreError(
        f"unknown reviewer {name!r}; known: {', '.join(r.name for r in store.reviewers()) or 'none'}"
    )


def _meta(row: Any, reviewer: str, margin: float | None, pair: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "case_id": row.case_id,
        "modality": row.modality,
        "error_type": row.error_type,
        "severity": row.severity,
        "true_label": row.true_label,
        "reviewer": reviewer,
        "rated_at": rated_at(row.created_at),
    }
    if pair:
        # Whether "chosen" is the clinician's own rewritten answer (a gold answer for SFT) or
        # the model verdict they preferred.
        meta["chosen_source"] = "rationale" if (row.rationale or "").strip() else "model"
    # The case and the rating itself, so an import can create the case and restores exactly what
    # the clinician said (export -> import -> export is identical for every kind).
    meta.update(
        {
            "finding": row.finding,
            "treatment": row.treatment,
            "preference": row.preference,
            "rationale": row.rationale if (row.rationale or "").strip() else None,
            "answer_a": row.answer_a,
            "answer_b": row.answer_b,
        }
    )
    if margin is not None:
        meta["margin"] = margin
    return meta


_RATING_COLUMNS = (
    RatingRow.id.label("rating_id"),
    RatingRow.severity,
    RatingRow.margin,
    RatingRow.created_at,
    RatingRow.true_label,
    RatingRow.rationale,
    RatingRow.preference,
    RatingRow.answer_a,
    RatingRow.answer_b,
    CaseRow.case_id,
    CaseRow.modality,
    CaseRow.finding,
    CaseRow.treatment,
    CaseRow.image,
    CaseRow.error_type,
    CaseRow.burned_in,
    CaseRow.burned_in_cleared_by,
    ReviewerRow.name.label("reviewer"),
)


def _trl_rows(reviewer_id: int | None) -> tuple[Any, Any]:
    stmt = (
        select(PreferencePairRow.chosen, PreferencePairRow.rejected, *_RATING_COLUMNS)
        .join(RatingRow, RatingRow.id == PreferencePairRow.rating_id)
        .join(CaseRow, CaseRow.case_id == RatingRow.case_id)
        .join(ReviewerRow, ReviewerRow.id == RatingRow.reviewer_id)
        .where(is_current())
        .order_by(RatingRow.id, PreferencePairRow.id)
    )
    count = (
        select(func.count(), func.count(RatingRow.margin))
        .select_from(PreferencePairRow)
        .join(RatingRow, RatingRow.id == PreferencePairRow.rating_id)
        .where(is_current())
    )
    if reviewer_id is not None:
        stmt = stmt.where(RatingRow.reviewer_id == reviewer_id)
        count = count.where(RatingRow.reviewer_id == reviewer_id)
    return stmt, count


def _kto_rows(reviewer_id: int | None) -> tuple[Any, Any]:
    stmt = (
        select(*_RATING_COLUMNS)
        .join(CaseRow, CaseRow.case_id == RatingRow.case_id)
        .join(ReviewerRow, ReviewerRow.id == RatingRow.reviewer_id)
        .where(is_current())
        .order_by(RatingRow.id)
    )
    count = (
        select(func.count(), func.count(RatingRow.margin))
        .select_from(RatingRow)
        .where(is_current())
    )
    if reviewer_id is not None:
        stmt = stmt.where(RatingRow.reviewer_id == reviewer_id)
        count = count.where(RatingRow.reviewer_id == reviewer_id)
    return stmt, count


def _kto_lines(row: Any) -> list[dict[str, Any]]:
    """One unpaired row per judgement of the rating (feedback_db.pairs: the rule the pairs use)."""
    judged = judgements(
        row.preference, row.true_label, row.rationale, row.answer_a or "", row.answer_b or ""
    )
    return [{"completion": assistant_turn(text), "label": good} for text, good in judged]


def export_feedback(
    store: Store,
    out: Path,
    *,
    workspace_root: Path,
    fmt: str = "trl",
    reviewer: str | None = None,
    image_converter: ImageConverter | None = None,
    progress: ProgressLike | None = None,
) -> ExportResult:
    """Write the standing ratings to ``out`` (JSONL) and their images to ``out.parent/images/``.

    Args:
        workspace_root: the folder case image paths are relative to.
        fmt: ``trl`` (preference pairs) or ``kto`` (unpaired rows).
        reviewer: only this reviewer's ratings (by name).
        image_converter: turns a non-PNG/JPEG image (DICOM, TIFF) into de-identified PNG bytes.
        progress: gets ``update("export", rows_done, rows_total)``.

    A row whose image cannot be exported is left out and named in ``ExportResult.problems``.

    Raises:
        ValueError: unknown ``fmt``.
        StoreError: unknown reviewer, or a database error. ``OSError``: the file cannot be written.
        Nothing is replaced at ``out`` unless the export completes.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    rid = _reviewer_id(store, reviewer)
    stmt, count = (_trl_rows if fmt == "trl" else _kto_rows)(rid)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = ImageExporter(out.parent, Path(workspace_root), image_converter)
    problems: list[str] = []
    rows = done = 0
    ratings: set[int] = set()
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per line
    # case_id -> ('{"prompt": ...', '"images": [...]'), serialised once per case; key order as docs/architecture.md
    heads: dict[str, tuple[str, str]] = {}
    # Owner-only (0o600): ratings are clinical judgements. Replaced only when complete.
    with (
        atomic_writer(out, "w", newline="\n") as fh,
        store.sessions.scope("exporting ratings") as s,
    ):
        # Counted in the same transaction as the rows, so the margin decision fits them.
        total, margins = s.execute(count).one()
        with_margin = fmt == "trl" and margins > 0
        if progress is not None:
            progress.update("export", 0, total)
        # Plain rows through the session's connection: the ORM's per-row work is not needed.
        result = s.connection().execution_options(yield_per=_BATCH).execute(stmt)
        for row in result:
            done += 1
            head = heads.get(row.case_id)
            if head is None:
                if row.burned_in and not row.burned_in_cleared_by:
                    problems.append(
                        f"case {row.case_id} (rating {row.rating_id}): its DICOM declares text "
                        "burned into the pixels and no clinician has confirmed that the image "
                        "shows no identifier; left out"
                    )
                    continue
                try:
                    image = images.export(row.image)
                except ImageError as exc:
                    problems.append(f"case {row.case_id} (rating {row.rating_id}): {exc}")
                    continue
                prompt = user_turn(case_text(row.modality, row.finding, row.treatment))
                head = heads[row.case_id] = (
                    encode({"prompt": prompt})[:-1],
                    '"images": ' + encode([image]),
                )
            margin = float(row.margin or 0.0) if with_margin else None
            meta = encode(_meta(row, row.reviewer, margin, pair=fmt == "trl"))[1:]
            if fmt == "trl":
                bodies = [
                    {"chosen": assistant_turn(row.chosen), "rejected": assistant_turn(row.rejected)}
                ]
            else:
                bodies = _kto_lines(row)
            for body in bodies:
                fh.write(f"{head[0]}, {encode(body)[1:-1]}, {head[1]}, {meta}\n")
            rows += len(bodies)
            ratings.add(row.rating_id)
            if progress is not None and done % _BATCH == 0:
                progress.update("export", done, total)
    if progress is not None:
        progress.update("export", done, total)
    return ExportResult(out, fmt, rows, len(ratings), images.written, problems)
