"""The chapter modules: each holds one chapter's analysis, and imports only infrastructure and earlier chapters.

``ORDER`` is their book order, the layer map of this folder: ``tests/test_layers.py`` fails on a module missing
from it and on any import of a later chapter's module (or of ``palindrome.book``).
"""

ORDER: tuple[str, ...] = (
    "adversarial",  # chapter 6: the hand-made adversarial examples
    "blindspots",  # chapter 8: the blind-spot map
    "blindspot_details",  # appendix A: checks of the map (both sides, value pairs, attention by outcome)
    "backup",  # chapter 9: the other two heads
    "faithfulness",  # chapter 10: how much the circuit explains
    "roles",  # chapter 11: roles found automatically in the replicas
    "prediction",  # chapter 12: the explanation as code, in levels; edits of the mismatch signal
    "scrubbing",  # chapter 12: hypothesis-conditioned resampling (causal scrubbing)
    "retraining",  # chapter 13: training on other data generators; the July model on its own training data
)
"""Chapter modules in book order: a module may import those before it, never one after it."""
