"""Model plumbing the back ends share: where weights come from, and the embedded demo models.

``hub`` resolves a model id or folder offline and raises ``ModelNotAvailable`` with a fix when the
weights are not on this machine. ``demo_*`` build tiny models of the same classes as the real ones
(open_clip, a causal LM, Gemma 3), locally and with no download; ``demo_train`` fits them briefly
on the synthetic demo cases so their verdicts mean something.
"""
