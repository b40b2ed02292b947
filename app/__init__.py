"""Front ends: the Qt GUI and the ``medreview`` command line. Nothing imports ``app``."""
