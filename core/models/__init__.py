"""Models: the back ends behind one ``predict`` interface (``backends``), where weights come from
(``hub``: a model id or folder resolved offline, ``ModelNotAvailable`` with a fix when missing),
the CLIP scorer the clip-llm back end describes images with (``clip_scorer``), and the registry of
trained versions and their model cards (``registry``).

Above ``core.clinical`` and ``core.cases``; below training and the demo.
"""
