"""Mirror model versions and their verdicts from the registry (core) into the store (feedback_db).

The registry (``<workspace>/models/<version>/model_card.json``) is the truth about weights; the
store keeps a row per version so ratings, predictions and evaluations can point at it. Every verb
that makes a version (``demo create``, ``train``, ``predict``) goes through here, so the mirror is
written one way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.convert import prediction_in_from_verdict
from core.cases.records import Case
from core.clinical.verdicts import Verdict
from feedback_db import ModelVersion, Store


def base_model_text(base_models: dict[str, str]) -> str:
    """One line naming a card's base models, e.g. ``clip=base/clip, lm=base/lm``."""
    return ", ".join(f"{k}={v}" for k, v in sorted(base_models.items())) or "-"


def mirror_card(
    store: Store,
    card: Any,
    *,
    active: bool = False,
    metrics: dict[str, Any] | None = None,
) -> ModelVersion:
    """Add a store row for the registry ``card`` (a ``core.models.registry.ModelCard``), unless the store
    has it already; returns the store's version record. The row's path is ``models/<name>``,
    relative to the workspace, so a workspace folder can be moved or copied whole."""
    existing = store.get_model_version(card.name)
    if existing is not None:
        if active and not existing.active:
            return store.set_active(card.name)
        return existing
    from core.models.registry import card_sha256

    return store.add_model_version(
        card.name,
        card.backend,
        base_model_text(card.base_models),
        parent=card.parent,
        path=f"models/{card.name}",
        metrics=metrics if metrics is not None else (card.metrics or None),
        active=active,
        note=card.description or None,
        card_sha256=card_sha256(card),
    )


def recorded_card_hashes(ws: Any) -> Callable[[str], str | None]:
    """``Registry(..., card_hashes=...)`` for the workspace ``ws`` (an ``app.workspace.Workspace``):
    the card hash its store recorded when each version was registered (None for a version the
    store does not know, or one registered before hashes were recorded). The store is opened
    only when a version is loaded, and never created."""

    def lookup(name: str) -> str | None:
        from feedback_db import StoreError, open_store

        if not ws.exists():
            return None
        try:
            with open_store(ws.db_url) as store:
                version = store.get_model_version(name)
        except StoreError:
            return None  # no store yet: nothing was recorded
        return None if version is None else version.card_sha256

    return lookup


def store_verdicts(
    store: Store, version: str, cases: Sequence[Case], verdicts: Sequence[Verdict]
) -> int:
    """Save ``verdicts`` (in the order of ``cases``) as ``version``'s predictions."""
    if len(cases) != len(verdicts):
        raise ValueError(f"{len(verdicts)} verdicts for {len(cases)} cases")
    return store.add_predictions(
        version,
        [prediction_in_from_verdict(c.case_id, v) for c, v in zip(cases, verdicts, strict=True)],
    )
