"""What every part of the engine runs on: progress reporting and cancelling (``progress``), the
compute device and its dtype (``devices``), keeping paths inside a root (``paths``), and
atomic file writes (``files``).

The bottom layer of ``core``: it imports nothing else from the engine.
"""
