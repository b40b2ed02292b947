"""Alembic migrations of the store, shipped in the package and run from code (feedback_db.migrate)."""
