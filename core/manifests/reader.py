"""``read_manifest``: cases from a manifest file or a folder, whichever ``path`` is.

The one entry point the CLI, the GUI's import and the tests use; ``manifest`` reads files and
``folder`` reads folders, and neither imports the other's entry point.
"""

from __future__ import annotations

from pathlib import Path

from core.clinical.knowledge import KnowledgeTable, default_knowledge
from core.manifests.folder import read_folder
from core.manifests.manifest import ImportOptions, ManifestResult, RowError, read_rows, with_secret
from core.manifests.rows import parse_manifest
from core.runtime.progress import Progress


def read_manifest(
    path: Path,
    images_dir: Path,
    *,
    progress: Progress | None = None,
    knowledge: KnowledgeTable | None = None,
    options: ImportOptions | None = None,
) -> ManifestResult:
    """Read cases from the manifest or folder at ``path`` and store their images in ``images_dir``.

    ``Case.image`` is relative to ``images_dir``'s parent (the workspace root):
    ``images/<sha256>.<ext>``. Image paths in a manifest are relative to the images root (the
    manifest's folder unless ``options.images_root``), or absolute inside it. A folder is read by
    ``core.manifests.folder``. Errors with a severity or cost missing are completed from the
    knowledge table.

    Raises:
        core.runtime.progress.Canceled: ``progress`` was canceled (images stored so far stay; they are
            content-addressed and harmless).
    """
    path = Path(path)
    opts = with_secret(options or ImportOptions(), Path(images_dir))
    kt = knowledge or default_knowledge()
    if path.is_dir():
        return read_folder(path, Path(images_dir), opts, kt, progress)
    rows, file_errors = parse_manifest(path)
    result = ManifestResult(errors=[RowError(str(path), line, msg) for line, msg in file_errors])
    root = opts.images_root or path.parent
    read_rows(path, rows, root, Path(images_dir), opts, kt, progress, result)
    return result
