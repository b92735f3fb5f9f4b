"""The package's layers, written once: infrastructure at the bottom, chapter modules on top in book order.

Rule: an infrastructure module imports only infrastructure; a chapter module imports
infrastructure and the chapter modules of earlier chapters, never a later one; a top module (the
reconciliation of all published claims) may import every chapter module. The package's
``__init__`` re-exports infrastructure only. ``tests/test_layers.py`` reads every module's imports
(with ``ast``, so imports inside functions and under ``TYPE_CHECKING`` count too) and fails on any
module missing from this map, on any import that breaks the rule, and on ``importlib`` imports
of package modules, which a static reader cannot see.
"""

from __future__ import annotations

INFRASTRUCTURE: tuple[str, ...] = (
    "constants",  # sizes, tokens, positions, head names
    "tokens",  # the validators: tokens, labels, integers, layers and heads
    "data",  # PalindromeDataset, the original generator, display
    "findings",  # named key numbers: declared keys, the one slug function
    "probes",  # hand-built probe inputs: random palindromes, broken pairs, edits, decoys
    "generator",  # closed forms of the generator's mismatch distribution
    "checkpoint",  # finding, verifying and caching the July checkpoint
    "model",  # the architecture, weight processing, loading
    "metrics",  # END logits, loss, accuracy, logit difference
    "hooks",  # cached runs, hook names, the LayerNorm-scale hook
    "stats",  # exact paired tests (McNemar) and Holm's correction
    "fast",  # the fast END-only forward pass (sweeps, training)
    "train",  # the original training recipe on the fast path
    "replicas",  # the shipped retrained models and their manifest
    "counterfactuals",  # the shipped runs on other data generators (chapter 13) and their manifest
    "ablation",  # the ablation engine (zero / mean / resample of head activations)
    "paths",  # the path-patching engine (edges of the residual stream kept or ablated)
    "plots",  # figure wrappers (plotly, circuitsvis)
    "quickstart",  # the first-use path: classify and explain a sequence in one call
    "layers",  # this map
)
"""Shared modules any chapter may use; they import nothing above them."""

CHAPTERS: tuple[tuple[str, int], ...] = (
    ("circuits", 2),  # H0.0's QK circuit, OV circuits, attention patterns
    ("attribution", 3),  # direct logit attribution (and chapter 5's composed OV votes)
    ("composition", 4),  # composition scores and END's attention
    ("adversarial", 6),  # the hand-made adversarial examples
    ("blindspots", 8),  # the blind-spot map
    ("backup", 9),  # the other two heads
    ("faithfulness", 10),  # how much the circuit explains
    ("roles", 11),  # roles found automatically in the replicas
    ("prediction", 12),  # the explanation as code, in levels; edits of the mismatch signal
    ("scrubbing", 12),  # hypothesis-conditioned resampling (causal scrubbing)
    ("retraining", 13),  # counterfactual training runs; the July model on its own training data
)
"""Chapter modules with the chapter that introduces each, in book order."""

TOP: tuple[str, ...] = ("reconciliation", "live", "report", "exercises")
"""Modules above every chapter (the reconciliation of the published claims; the live model of the
"Try it" page; the report on any checkpoint): they may import any chapter module, and no other module
imports them."""
