"""``app.cli.common``: the ``--numerics`` switch is applied before a verb runs, and a CPU that
cannot pin its numerics gets one sentence, not silence."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from app.cli import common
from app.cli.main import build_parser
from app.demo_plan import PENDING_NAME
from core.runtime import numerics


def _applied(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> tuple[str, list[str]]:
    """What ``main`` would apply for ``argv``: the choice, and which switch it pulled."""
    pulled: list[str] = []
    monkeypatch.setattr(numerics, "use_portable_numerics", lambda: pulled.append("pin"))
    monkeypatch.setattr(numerics, "clear_portable_numerics", lambda: pulled.append("clear"))
    args = build_parser().parse_args(argv)
    common.apply_numerics(args)
    return getattr(args, "numerics", None), pulled


@pytest.mark.parametrize("verb", [["demo", "create"], ["demo", "models"], ["benchmark"]])
def test_demo_building_verbs_default_to_portable(
    verb: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ws = ["--workspace", str(tmp_path / "none")]
    assert _applied(monkeypatch, [*verb, *ws]) == ("portable", ["pin"])
    assert _applied(monkeypatch, [*verb, *ws, "--numerics", "native"]) == ("native", ["clear"])


@pytest.mark.parametrize("given", ["native", "portable"])
def test_demo_models_follows_what_demo_create_was_given(
    given: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # demo create --quick leaves the note; the full models are then made with its arithmetic.
    (tmp_path / PENDING_NAME).write_text(json.dumps({"numerics": given}), encoding="utf-8")
    argv = ["demo", "models", "--workspace", str(tmp_path)]
    assert _applied(monkeypatch, argv)[0] == given
    other = "portable" if given == "native" else "native"
    assert _applied(monkeypatch, [*argv, "--numerics", other])[0] == other  # the option wins
    (tmp_path / PENDING_NAME).write_text("{not json", encoding="utf-8")
    assert _applied(monkeypatch, argv)[0] == "portable"


def test_verbs_that_do_not_compute_pull_no_switch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert _applied(monkeypatch, ["benchmark", "--from-json", str(tmp_path / "b.json")])[1] == []
    assert _applied(monkeypatch, ["db", "info", "--workspace", str(tmp_path)])[1] == []


def test_a_cpu_that_cannot_gets_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        numerics, "use_portable_numerics", lambda: "this CPU lacks avx2 (x86-64-v3), which ..."
    )
    common.apply_numerics(argparse.Namespace(numerics="portable"))
    err = capsys.readouterr().err
    assert err.startswith("note: portable numerics is off: this CPU lacks avx2")
    assert err.count("\n") == 1


def test_libraries_already_loaded_stay_quiet(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process callers (tests, a notebook) load NumPy first; the card records "native".
    monkeypatch.setattr(
        numerics,
        "use_portable_numerics",
        lambda: "numpy was loaded before the numerics could be pinned",
    )
    common.apply_numerics(argparse.Namespace(numerics="portable"))
    assert capsys.readouterr().err == ""
