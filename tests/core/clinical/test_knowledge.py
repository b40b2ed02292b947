from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cases.records import MODALITIES
from core.clinical.knowledge import KnowledgeError, default_knowledge, load_knowledge


def test_shipped_table_covers_every_modality_and_rule() -> None:
    kt = default_knowledge()
    for m in MODALITIES:
        assert len(kt.findings_for(m)) >= 2
    for t in kt.treatments.values():
        if t.klass in ("surgery", "chemotherapy"):
            assert t.severity == "critical"
        elif t.klass == "procedure" and t.cost_usd >= 2000:
            assert t.severity == "high"
        else:
            assert t.severity == "moderate"


def test_acceptable_lookup_is_case_insensitive() -> None:
    kt = default_knowledge()
    assert kt.is_acceptable("xray", "pneumothorax", "chest TUBE insertion") is True
    assert kt.is_acceptable("xray", "Pneumothorax", "Lobectomy") is False
    assert kt.is_acceptable("xray", "unknown finding", "Lobectomy") is None


def test_bad_table_names_file_and_field(tmp_path: Path) -> None:
    doc = json.loads(Path(default_knowledge().source).read_text())
    doc["treatments"]["Lobectomy"]["class"] = "magic"
    bad = tmp_path / "k.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(KnowledgeError, match=r"k\.json: treatments\.Lobectomy\.class"):
        load_knowledge(bad)
