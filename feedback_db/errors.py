"""The store's own exception, so callers never have to know SQLAlchemy's."""

from __future__ import annotations


class StoreError(Exception):
    """A store operation failed; the message says what, in words.

    Raised for database errors (wrapped by the session context, the original is ``__cause__``),
    for references to rows that do not exist, and for schema problems (a database newer than this
    program, or one that needs an upgrade that was not allowed).
    """


class StoreBusy(StoreError):
    """Another connection holds the write lock past the busy timeout ("database is locked").

    Nothing was written; the same operation may simply be tried again (``Store.add_rating`` does,
    with backoff, for up to its ``patience``).
    """
