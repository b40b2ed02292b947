"""Reading cases in: a manifest file (``rows`` parses it, ``manifest`` checks each row against the
knowledge table and stores its image de-identified), or a folder of images with a sidecar
(``folder``). ``reader.read_manifest`` takes either.
"""
