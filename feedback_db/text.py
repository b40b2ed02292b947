"""The case text of ``expert_feedback.jsonl``, byte for byte the text the models are prompted with.

``core.clinical.prompts.case_text`` is the original; feedback_db may not import core (they are independent
packages), so this is a copy, and ``tests/app/test_store_text_matches_core.py`` keeps the two equal.
"""

from __future__ import annotations

MODALITY_NAMES: dict[str, str] = {
    "xray": "Chest X-ray",
    "histopathology": "Histopathology",
    "mri": "Brain MRI",
    "ultrasound": "Ultrasound",
}


def case_text(modality: str, finding: str, treatment: str) -> str:
    """``Modality: ...\\nClinical Finding: ...\\nTreatment: ...`` for one case."""
    name = MODALITY_NAMES.get(modality, modality)
    return f"Modality: {name}\nClinical Finding: {finding}\nTreatment: {treatment}"
