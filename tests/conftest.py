"""Shared fixtures. Tests never touch the user's real data folder or the network."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _numerics_env_restored() -> Iterator[None]:
    """An in-process ``main(["demo", ...])`` pins the numerics in ``os.environ`` (when NumPy is
    not loaded yet); put the variables back so the pins do not leak into later tests."""
    from core.runtime.numerics import PORTABLE_ENV

    names = (*PORTABLE_ENV, "MEDREVIEW_NUMERICS", "NPY_DISABLE_CPU_FEATURES")
    before = {k: os.environ.get(k) for k in names}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _isolated_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the default workspace and settings at a temporary folder for every test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("MEDREVIEW_LOG_DIR", str(home / "logs"))  # app/errors.py's log
    monkeypatch.delenv("MEDREVIEW_WORKSPACE", raising=False)
