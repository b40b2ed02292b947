"""The newest schema revision this program knows, in a module that imports nothing.

``feedback_db.migrate`` compares an open store with it (and never imports alembic for an
up-to-date store); ``feedback_db.quick_reader`` checks it before reading a file without
SQLAlchemy. A test compares it with alembic's own reading of migrations/versions, so a new
migration cannot be added without updating it.
"""

HEAD = "0003"
