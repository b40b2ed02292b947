"""The text every back end and every trainer puts in front of a model.

One place, so the prompt a model is trained on is the prompt it is asked at prediction time, and
the prompt in ``expert_feedback.jsonl`` is the same text.
"""

from __future__ import annotations

from core.cases.records import Case

MODALITY_NAMES: dict[str, str] = {
    "xray": "Chest X-ray",
    "histopathology": "Histopathology",
    "mri": "Brain MRI",
    "ultrasound": "Ultrasound",
}

INSTRUCTION = (
    "Does the proposed treatment fit the image and the stated finding? Answer on the first line "
    "with 'ERROR - <reason>' or 'CORRECT - <reason>'."
)


def case_text(case: Case) -> str:
    """The case as the feedback file and the models see it: modality, finding, treatment."""
    modality = MODALITY_NAMES.get(case.modality, case.modality)
    return f"Modality: {modality}\nClinical Finding: {case.finding}\nTreatment: {case.treatment}"


def build_prompt(case: Case, image_description: str | None = None) -> str:
    """The full user prompt; ``image_description`` is the clip-llm back end's view of the image."""
    parts = [case_text(case)]
    if image_description:
        parts.append(f"Image: {image_description}")
    parts.append(INSTRUCTION)
    return "\n".join(parts)
