"""``medreview benchmark``'s results: exactly the issue's JSON schema, McNemar pooled over seeds,
the Markdown table docs/training.md shows rendered from that file, the seeds option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli.benchmark import PHASES, SeedResult, markdown_table, parse_seeds, results_json
from app.cli.common import CommandError
from app.cli.main import main
from core.cases.records import Case
from core.clinical.verdicts import make_verdict

PER_SEED_KEYS = {"seed", "workspace", "version", "accuracy", "tp_rate", "tn_rate", "fpr", "fp",
                 "critical_misses", "mean_clinical_reward"}  # fmt: skip


def _result(seed: int, wrong: dict[str, set[int]]) -> SeedResult:
    """Ten test cases (half errors, one critical); phase p is wrong on the indices wrong[p]."""
    cases = [
        Case(f"s{seed}-{i}", "xray", "x.png", "F", "T", "none" if i % 2 else "treatment_mismatch",
             None if i % 2 else ("critical" if i == 0 else "moderate"), split="test")
        for i in range(10)
    ]  # fmt: skip
    verdicts = {}
    for phase in PHASES:
        out = []
        for i, c in enumerate(cases):
            label = (
                c.truth_label if i not in wrong[phase] else ("CORRECT" if c.is_error else "ERROR")
            )
            out.append(make_verdict(f"{label} - x"))
        verdicts[phase] = out
    versions = {"heuristic": "heuristic", "vision": "demo-v2", "sft": "bench-sft", "rl": "bench-rl"}
    return SeedResult(
        seed, Path(f"/b/seed-{seed}"), versions, cases, verdicts, seconds={"demo": 1.0}
    )


def test_results_are_exactly_the_schema_and_mcnemar_is_pooled():
    a = _result(0, {"heuristic": {0, 1, 2}, "vision": {1, 2}, "sft": {2}, "rl": set()})
    b = _result(1, {"heuristic": {0, 3}, "vision": {3}, "sft": {3, 5}, "rl": {5}})
    doc = results_json([a, b])
    assert set(doc) == {"seeds", "phases", "paired"} and doc["seeds"] == [0, 1]
    assert [p["phase"] for p in doc["phases"]] == ["heuristic", "vision", "sft", "rl"]
    for p in doc["phases"]:
        assert set(p) == {"phase", "per_seed", "mean", "sd"}
        assert all(set(row) == PER_SEED_KEYS for row in p["per_seed"])
        assert set(p["mean"]) == set(p["sd"]) == PER_SEED_KEYS - {"seed", "workspace", "version"}
    rl = doc["phases"][3]
    assert [r["accuracy"] for r in rl["per_seed"]] == [1.0, 0.9]
    assert rl["mean"]["accuracy"] == pytest.approx(0.95) and rl["sd"]["accuracy"] == pytest.approx(
        0.0707, abs=1e-4
    )
    assert doc["phases"][0]["per_seed"][0]["critical_misses"] == 1
    assert (
        rl["per_seed"][1]["workspace"] == "/b/seed-1" and rl["per_seed"][1]["version"] == "bench-rl"
    )
    paired = {(p["from"], p["to"]): p for p in doc["paired"]}
    assert set(paired) == {("heuristic", "vision"), ("vision", "sft"), ("sft", "rl")}
    assert set(paired["sft", "rl"]) == {"from", "to", "b", "c", "mcnemar_p"}
    # pooled over both seeds: sft -> rl fixes case 2 (seed 0) and case 3 (seed 1), breaks none
    assert (paired["sft", "rl"]["b"], paired["sft", "rl"]["c"]) == (0, 2)
    assert (paired["vision", "sft"]["b"], paired["vision", "sft"]["c"]) == (1, 1)
    assert paired["sft", "rl"]["mcnemar_p"] == pytest.approx(0.5)
    json.dumps(doc, allow_nan=False)  # plain JSON


def test_markdown_is_rendered_from_the_json_file(tmp_path, capsys):
    doc = results_json([_result(0, {"heuristic": {0}, "vision": set(), "sft": set(), "rl": set()})])
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "table.md"
    assert main(["benchmark", "--from-json", str(src), "--markdown", str(out)]) == 0
    table = out.read_text(encoding="utf-8")
    assert table == markdown_table(doc) and "| text heuristic | 90.0%" in table
    assert "| sft | rl | 0 | 0 | 1 |" in table
    assert "McNemar" in capsys.readouterr().out


def test_seeds_are_parsed_and_checked():
    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("7") == [7]
    for bad in ("", "a,b", "1,1", "-1"):
        with pytest.raises(CommandError):
            parse_seeds(bad)
