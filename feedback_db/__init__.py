"""The feedback store: SQLAlchemy models, sessions, migrations, export/import of JSONL.

Never imports torch or Qt (see the import-linter contracts in pyproject.toml).
"""
