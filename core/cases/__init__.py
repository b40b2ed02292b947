"""Cases and their pixels: the case record (``records``), image loading and windowing
(``images``, ``pixels``), DICOM reading (``dicom``) and its de-identification (``dicom_deid``).

Above ``core.runtime`` only; knows nothing of clinical rules, models or training.
"""
