"""The queue query and the pure rules of the review session, with no Qt.

Kept free of Qt so that the start-up preload (``app.gui.preload``) can run the first queue query
on a thread while the window's Qt modules are still loading.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feedback_db.protocols import StoreReader


@dataclass(frozen=True)
class Filters:
    """What the queue shows; None means any."""

    modality: str | None = None
    split: str | None = None
    rated: bool | None = None
    disagree: bool | None = None
    order: str = "uncertainty"


@dataclass(frozen=True)
class QueueResult:
    """The ids the queue shows, in order, and the ids this reviewer has rated."""

    ids: list[str]
    rated: set[str]


def run_queue_query(
    reader: StoreReader, filters: Filters, reviewer_id: int | None, versions: tuple[str, str] | None
) -> QueueResult:
    """Run the store's queue query for ``filters`` (and the reviewer's rated set)."""
    ids = reader.query_case_ids(
        modality=filters.modality,
        split=filters.split,
        rated=filters.rated,
        reviewer_id=reviewer_id,
        order=filters.order,
        versions=versions,
        disagree=filters.disagree if versions else None,
    )
    rated: set[str] = set()
    if reviewer_id is not None:
        rated = set(reader.query_case_ids(rated=True, reviewer_id=reviewer_id, order="id"))
    return QueueResult(ids, rated)


def pick_versions(
    versions: list[Any], preferred: tuple[str, str] | None = None
) -> tuple[str, str] | None:
    """The two versions the session compares (the review pair): ``preferred`` (the workspace's
    choice) when both still exist, else the active one (else the newest) against the newest
    other one, the newest candidate. None when the store has fewer than two versions."""
    names = {v.name for v in versions}
    if preferred is not None and preferred[0] != preferred[1] and set(preferred) <= names:
        return preferred
    if len(versions) < 2:
        return None
    newest_first = list(reversed(versions))  # model_versions() is oldest first
    first = next((v for v in newest_first if v.active), newest_first[0])
    second = next(v for v in newest_first if v.name != first.name)
    return first.name, second.name


def blind_pair(
    case_id: str, predictions: list[Any], versions: tuple[str, str] | None
) -> tuple[Any | None, Any | None]:
    """Verdicts A and B for a case, in an order that is random per case but stable across runs.

    The pair is the latest verdict of each of the session's two ``versions`` (the review pair;
    B is None when the case lacks one of them); ``random.Random`` seeded with the case id (a string seed is
    hashed with SHA-512, not Python's salted ``hash``) decides which one is shown as A.
    """
    by_version = {p.version: p for p in predictions}
    if versions is not None:
        # Only the review pair is rated: a case that lacks one of its verdicts is not offered
        # another version's instead ("Run model on these cases" fills it in).
        first, second = by_version.get(versions[0]), by_version.get(versions[1])
        if first is None or second is None:
            return (first or second), None
    elif len(predictions) >= 2:
        first, second = predictions[-1], predictions[-2]
    else:
        return (predictions[0] if predictions else None), None
    if random.Random(case_id).random() < 0.5:
        first, second = second, first
    return first, second


def uncertainty(predictions: list[Any], versions: tuple[str, str] | None) -> float | None:
    """How unsure the compared versions are, 0 (certain) to 1 (a coin toss): one minus twice the
    mean |confidence - 0.5|, the store's queue order (feedback_db.queue). None without confidence."""
    names = set(versions or ())
    confs = [
        p.confidence
        for p in predictions
        if p.confidence is not None and (not names or p.version in names)
    ]
    if not confs:
        return None
    return 1.0 - 2.0 * sum(abs(c - 0.5) for c in confs) / len(confs)
