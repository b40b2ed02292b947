"""``app.cli.common``: the ``--numerics`` switch is applied before a verb runs, and a CPU that
cannot pin its numerics gets one sentence, not silence."""

from __future__ import annotations

import argparse

import pytest

from app.cli import common
from app.cli.main import build_parser
from core.runtime import numerics


@pytest.mark.parametrize("verb", [["demo", "create"], ["demo", "models"], ["benchmark"]])
def test_demo_building_verbs_default_to_portable(verb: list[str]) -> None:
    args = build_parser().parse_args(verb)
    assert args.numerics == "portable"
    assert build_parser().parse_args([*verb, "--numerics", "native"]).numerics == "native"


def test_native_leaves_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[bool] = []
    monkeypatch.setattr(numerics, "use_portable_numerics", lambda: called.append(True))
    common.apply_numerics(argparse.Namespace(numerics="native"))
    common.apply_numerics(argparse.Namespace())  # a verb without the option
    assert called == []


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
