"""Decoded images, cached and prefetched off the GUI thread.

``core.cases.images.load_image`` (PNG/JPEG/TIFF/DICOM, numpy and PIL/pydicom only) runs on the ``io``
lane; the decoded ``LoadedImage`` is kept in a small LRU cache that only the GUI thread touches
(results arrive through the lane's success callback, on the GUI thread), so no lock is needed.
The review model prefetches the neighbours of the current case, so moving to the next case
usually finds its image decoded already.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.gui.operations import Lane, describe


def load(path: Path) -> Any:
    """Decode one image (any thread)."""
    from core.cases.images import load_image

    return load_image(path)


class ImageCache:
    """LRU of decoded images by path; ``request`` calls back on the GUI thread."""

    def __init__(self, lane: Lane, capacity: int = 24) -> None:
        self._lane = lane
        self._capacity = capacity
        self._images: OrderedDict[Path, Any] = OrderedDict()
        self._pending: dict[Path, list[Callable[[Any, str | None], None]]] = {}

    def get(self, path: Path) -> Any | None:
        image = self._images.get(path)
        if image is not None:
            self._images.move_to_end(path)
        return image

    def _put(self, path: Path, image: Any) -> None:
        self._images[path] = image
        self._images.move_to_end(path)
        while len(self._images) > self._capacity:
            self._images.popitem(last=False)

    def request(
        self, path: Path, callback: Callable[[Any, str | None], None] | None = None
    ) -> None:
        """Deliver the image of ``path`` to ``callback(image, error)``: at once when cached,
        else after decoding on the io lane. ``error`` is a message in words, or None."""
        cached = self.get(path)
        if cached is not None:
            if callback is not None:
                callback(cached, None)
            return
        waiting = self._pending.get(path)
        if waiting is not None:
            if callback is not None:
                waiting.append(callback)
            return
        self._pending[path] = [callback] if callback is not None else []

        def done(image: Any) -> None:
            self._put(path, image)
            for cb in self._pending.pop(path, []):
                cb(image, None)

        def failed(exc: BaseException) -> None:
            message = f"Cannot show {path.name}: {describe(exc)}"
            for cb in self._pending.pop(path, []):
                cb(None, message)

        self._lane.submit(lambda _progress: load(path), on_success=done, on_failure=failed)

    def prefetch(self, paths: list[Path]) -> None:
        for path in paths:
            if path not in self._images and path not in self._pending:
                self.request(path)
