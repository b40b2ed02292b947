"""The typed surface of the store that the app passes around (Optuna's ``BaseStorage`` idea).

The GUI holds two stores: a reader on its own thread and a writer on the db lane. Annotating
them with these Protocols, instead of ``Any``, says exactly what each side may call; ``Store``
satisfies both (checked by a test and by mypy).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from feedback_db.records import CaseRecord, ModelVersion, Prediction, Rating, RatingIn, Reviewer


class StoreReader(Protocol):
    """What the window reads on the GUI thread: short indexed queries, never writes."""

    def model_versions(self) -> list[ModelVersion]: ...
    def reviewers(self) -> list[Reviewer]: ...
    def get_case(self, case_id: str) -> CaseRecord | None: ...
    def get_cases(self, ids: Iterable[str]) -> list[CaseRecord]: ...
    def predictions_for_case(self, case_id: str) -> list[Prediction]: ...
    def predictions_by_id(self, ids: Iterable[int]) -> dict[int, Prediction]: ...
    def predictions_for_version(
        self, version: str, split: str | None = None
    ) -> dict[str, Prediction]: ...
    def current_rating(self, case_id: str, reviewer_id: int | None = None) -> Rating | None: ...
    def query_case_ids(
        self,
        *,
        modality: str | None = None,
        split: str | None = None,
        rated: bool | None = None,
        reviewer_id: int | None = None,
        disagree: bool | None = None,
        versions: tuple[str, str] | None = None,
        order: str = "uncertainty",
    ) -> list[str]: ...
    def close(self) -> None: ...


class StoreWriter(Protocol):
    """What the db lane writes, one job at a time, in the order the clinician acted."""

    def ensure_reviewer(self, name: str, role: str) -> Reviewer: ...
    def add_rating(self, rating: RatingIn, *, rated_at: datetime | None = None) -> Rating: ...
    def undo_last(self, reviewer_id: int, *, since: datetime | None = None) -> Rating | None: ...
    def confirm_no_identifier(self, case_id: str, reviewer: str) -> CaseRecord: ...
    def close(self) -> None: ...
