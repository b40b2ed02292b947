"""Atomic writes (core/runtime/files.py and the store's copy, feedback_db/files.py).

Every test runs on both copies; one more checks that their code is the same, so the store's
copy cannot drift from core's.
"""

from __future__ import annotations

import ast
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import core.runtime.files as core_files
import feedback_db.files as db_files


@pytest.fixture(params=[core_files, db_files], ids=["core", "feedback_db"])
def files(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bytes_and_text_are_written(files: ModuleType, tmp_path: Path) -> None:
    files.atomic_write(tmp_path / "a.bin", b"\x00\xffbytes")
    files.atomic_write(tmp_path / "b.txt", "caf\u00e9\nline\n")
    files.atomic_write(tmp_path / "c.txt", "x\ny\n", encoding="latin-1", newline="\r\n")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\xffbytes"
    assert (tmp_path / "b.txt").read_bytes() == "caf\u00e9\nline\n".encode()
    assert (tmp_path / "c.txt").read_bytes() == b"x\r\ny\r\n"
    with files.atomic_writer(tmp_path / "d.jsonl", "w", newline="\n") as fh:
        for i in range(3):
            fh.write(f'{{"i": {i}}}\n')
    assert (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines() == [
        '{"i": 0}',
        '{"i": 1}',
        '{"i": 2}',
    ]
    assert _left(tmp_path) == ["a.bin", "b.txt", "c.txt", "d.jsonl"]  # no temporary file behind


def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(
    files: ModuleType, tmp_path: Path
) -> None:
    target = tmp_path / "settings.json"
    target.write_text("old", encoding="utf-8")
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="disk on fire"):
        with files.atomic_writer(target, "w") as fh:
            fh.write("new, half written")
            fh.flush()
            seen = [p.name for p in tmp_path.iterdir() if p.name != "settings.json"]
            assert target.read_text(encoding="utf-8") == "old"  # readers still see the old file
            raise RuntimeError("disk on fire")
    assert len(seen) == 1 and seen[0].startswith(".settings.json.") and seen[0].endswith(".tmp")
    assert target.read_text(encoding="utf-8") == "old"
    assert _left(tmp_path) == ["settings.json"]


def test_an_interrupt_and_a_failed_rename_clean_up_too(files: ModuleType, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_writer(target) as fh:
            fh.write(b"new")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and _left(tmp_path) == ["out.jsonl"]
    folder = tmp_path / "a-folder"  # os.replace cannot put a file over a non-empty folder
    folder.mkdir()
    (folder / "inside").write_bytes(b"")
    with pytest.raises(OSError):
        files.atomic_write(folder, b"new")
    assert _left(tmp_path) == ["a-folder", "out.jsonl"] and _left(folder) == ["inside"]


def test_text_that_cannot_be_encoded_fails_before_the_rename(
    files: ModuleType, tmp_path: Path
) -> None:
    target = tmp_path / "t.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        files.atomic_write(target, "\u2603", encoding="ascii")
    with pytest.raises(LookupError):
        files.atomic_write(target, "x", encoding="no-such-codec")
    assert target.read_text(encoding="utf-8") == "old" and _left(tmp_path) == ["t.txt"]


def test_permissions_owner_only_by_default_and_as_open_when_asked(
    files: ModuleType, tmp_path: Path, umask_022: None
) -> None:
    files.atomic_write(tmp_path / "phi.jsonl", b"x")
    files.atomic_write(tmp_path / "plain.json", "{}", permissions=0o666)
    with open(tmp_path / "by-open.json", "w", encoding="utf-8") as fh:
        fh.write("{}")
    assert _mode(tmp_path / "phi.jsonl") == 0o600
    assert _mode(tmp_path / "plain.json") == _mode(tmp_path / "by-open.json") == 0o644
    # Replacing a file gives the new file the requested mode, not the old file's.
    files.atomic_write(tmp_path / "plain.json", "{}")
    assert _mode(tmp_path / "plain.json") == 0o600


def test_fsync_forces_the_file_and_its_folder_and_can_be_skipped(
    files: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[bool] = []  # True: a folder, False: a file
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    files.atomic_write(tmp_path / "a", b"x")
    assert synced == ([False, True] if os.name == "posix" else [False])
    synced.clear()
    files.atomic_write(tmp_path / "b", b"x", fsync=False)
    assert synced == [] and (tmp_path / "b").read_bytes() == b"x"


def test_a_bad_kind_is_refused_before_anything_is_created(
    files: ModuleType, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="kind must be"):
        files.atomic_writer(tmp_path / "x", "a")
    assert _left(tmp_path) == []


def _code(module: ModuleType) -> str:
    """The module's source below its docstring, normalised by the parser."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    assert isinstance(tree.body[0], ast.Expr)  # the docstring, which may differ
    return ast.dump(ast.Module(body=tree.body[1:], type_ignores=[]))


def test_the_store_copy_is_the_same_code_as_cores() -> None:
    assert _code(db_files) == _code(core_files), (
        "feedback_db/files.py drifted from core/runtime/files.py: make the same change in both"
    )
