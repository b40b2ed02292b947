"""The loop-ceiling experiment's classes (benchmarks/loop_ceiling.py): a wrong answer on a case
that turns on the image is a perception error only when the encoder's call on the stated finding
was wrong; every other wrong answer is the language model's."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.loop_ceiling import best_p, classify
from core.cases.records import Case


def _case(kind: str) -> Case:
    return Case("c1", "xray", "x.png", "Pulmonary nodule", "CT follow-up", error_type=kind)


@pytest.mark.parametrize(
    ("kind", "said_error", "p", "expected"),
    [
        ("none", False, 0.9, "right"),
        ("none", True, 0.9, "language"),  # the call said seen, the answer still ERROR
        ("none", True, 0.1, "perception"),  # the call said not seen: the input misled it
        ("unsupported_by_image", False, 0.9, "perception"),  # called seen, it is not shown
        ("unsupported_by_image", False, 0.1, "language"),
        ("unsupported_by_image", True, 0.1, "right"),
        ("treatment_mismatch", False, 0.1, "language"),  # the image does not matter here
        ("treatment_mismatch", False, 0.9, "language"),
    ],
)
def test_classify(kind: str, said_error: bool, p: float, expected: str) -> None:
    assert classify(_case(kind), said_error, p, 0.5) == expected


def test_without_a_call_every_wrong_answer_is_the_language_models() -> None:
    assert classify(_case("none"), True, None, None) == "language"
    assert classify(_case("none"), True, 0.1, None) == "language"


def test_best_p_is_mcnemar_with_every_error_fixed_and_none_broken() -> None:
    assert best_p(0) == 1.0
    assert best_p(5) == pytest.approx(0.0625)
    assert best_p(6) == pytest.approx(0.03125)


def test_bad_arguments_get_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks._workspace import seed_list
    from benchmarks.loop_ceiling import main

    assert seed_list("3,4") == [3, 4]
    with pytest.raises(SystemExit) as e:
        main(["--dir", str(tmp_path), "--seeds", "1,x"])
    assert e.value.code == 2 and "--seeds: takes integers" in capsys.readouterr().err
    assert main(["--dir", str(tmp_path), "--splits", "vall"]) == 2
    assert "--splits takes some of train, review, val, test" in capsys.readouterr().err
    assert main(["--dir", str(tmp_path), "--seeds", "0", "--splits", "val"]) == 2
    assert "seed-0 has no demo_manifest.jsonl" in capsys.readouterr().err
