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
    "faithfulness_controls",  # chapter 10: its numbers at position 20 and over redrawn resampling partners
    "roles",  # chapter 11: roles found automatically in the replicas
    "explanation",  # chapter 12: the explanation as code, in levels
    "level_calls",  # chapter 12: every level's calls on the fixed input sets, compared with the model's
    "steering",  # chapter 12: the mismatch directions and edits of them
    "prediction",  # chapter 12: the key numbers that join the levels, their calls and the edits
    "scrubbing",  # chapter 12: hypothesis-conditioned resampling (causal scrubbing)
    "run_analysis",  # chapter 13: one trained run's blind pairs, roles, mirror attention and cost
    "training_errors",  # chapter 13: the July model's errors on its own training data
    "retraining",  # chapter 13: each variant run against its control, tested in pairs; tables and key numbers
)
"""Chapter modules in book order: a module may import those before it, never one after it."""
