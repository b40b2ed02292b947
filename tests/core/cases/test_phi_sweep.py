"""The PHI sweep (benchmarks/phi_sweep.py): no patient-identifying value of pydicom's test files
(and of pydicom-data, when installed) is found in the database, the stored images, an export or
its images. About 20-35 s on a 2-core machine, so marked slow:

    .venv/bin/python -m pytest tests/core/cases/test_phi_sweep.py -m slow
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.phi_sweep import sweep


@pytest.mark.slow
def test_no_identifying_value_survives_import_store_and_export(tmp_path: Path) -> None:
    res = sweep(tmp_path)
    assert res.with_pixels >= 50 and res.imported >= 40 and res.exported_rows == res.imported
    assert (
        res.values >= 200 and res.control_hits >= res.values
    )  # the search finds them at the source
    assert {where: len(h) for where, h in res.hits.items()} == {
        "database": 0,
        "stored images": 0,
        "export file": 0,
        "exported images": 0,
    }, res.hits
