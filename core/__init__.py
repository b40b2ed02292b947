"""The engine: cases and images, models and verdicts, training, evaluation.

Never imports Qt or SQLAlchemy (see the import-linter contracts in pyproject.toml). Heavy
libraries (torch, transformers, trl, open_clip, peft) are imported lazily inside the functions
that need them, so importing ``core`` stays cheap.
"""
