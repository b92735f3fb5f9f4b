"""The model in the reader's browser: what the "Try it" page needs, exported from the checkpoint at build time.

Method. The page runs the model's forward pass in plain JavaScript (``_ext/live/palindrome_live.js``)
from the processed weights of ``load_model`` (embeddings, each layer's LayerNorm and attention
weights, the final LayerNorm and the unembedding), exactly as TransformerLens computes it in
float32. Mean ablation replaces a head's output ``hook_result`` by its per-position mean over a
named reference batch of the training distribution (``REFERENCE``, the means of
``palindrome.ablation.Ablator``); zero ablation by 0. The direct logit attribution shown at END
is chapter 3's (each component's write dotted with W_U[:,0] - W_U[:,1], before the final
LayerNorm), next to the same divided by the final LayerNorm scale, whose parts (with the
unembedding bias) sum to the logit difference. The export is derived from the third-party
checkpoint, so it is written only into the build (``write_export``), never into the repository;
it records the checkpoint's sha256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from palindrome.ablation import Ablation, Ablator
from palindrome.attribution import components_from_cache
from palindrome.chapters.adversarial import BASE_PALINDROME, HANDMADE_ADVERSARIAL
from palindrome.checkpoint import PathLike, check_file, check_folder, resolve_checkpoint, sha256_file
from palindrome.circuits import nonpal_direction
from palindrome.constants import END, HEAD_NAMES, MAX_VALUE, MIRROR, SEQ_LEN, START
from palindrome.data import PalindromeDataset
from palindrome.fast import check_architecture
from palindrome.hooks import FINAL_SCALE, cached_run
from palindrome.inputs import break_pairs, random_palindromes
from palindrome.model import load_model
from palindrome.plots import library_file
from palindrome.tokens import TokensLike

REFERENCE_SIZE: int = 500
"""Mean ablation on the page substitutes means over ``PalindromeDataset(REFERENCE_SIZE)`` (seed 42)."""
EXPORT_NAME: str = "palindrome_live_weights.js"
"""File name of the export in the built site's ``_static``."""
GLOBAL: str = "PALINDROME_LIVE_WEIGHTS"
"""The JavaScript global the export defines."""
EXAMPLE_SEED: int = 0


def reference_batch() -> PalindromeDataset:
    """The page's reference batch for mean ablation: ``PalindromeDataset(REFERENCE_SIZE)``."""
    return PalindromeDataset(REFERENCE_SIZE)


def _values(t: Tensor) -> Any:
    return t.detach().float().cpu().tolist()


def examples() -> dict[str, list[int]]:
    """The page's example inputs, as 20 values each: a palindrome, a random input, the four hand-made
    adversarial examples, a blind-pair input (only pair (4, 17) broken) and a decoy input."""
    generator = torch.Generator().manual_seed(EXAMPLE_SEED)
    base = BASE_PALINDROME[None]
    out = {"palindrome": base[0, 1:-1].tolist()}
    out["random input"] = torch.randint(0, MAX_VALUE + 1, (20,), generator=generator).tolist()
    for i, row in enumerate(HANDMADE_ADVERSARIAL):
        out[f"hand-made adversarial {i + 1}"] = row[1:-1].tolist()
    out["blind pair (4, 17) broken"] = break_pairs(random_palindromes(1, generator), [17], generator)[0, 1:-1].tolist()
    decoy = base.clone()
    decoy[0, 13] = decoy[0, 2]  # position 13 takes the value of position 2: an earlier copy of the new value
    out["decoy: pair (8, 13) broken with an earlier value"] = decoy[0, 1:-1].tolist()
    return out


def export_weights(model: HookedTransformer, checkpoint_sha256: Optional[str] = None) -> dict[str, Any]:
    """Everything the page's forward pass needs, as JSON-ready lists: processed weights, reference means, examples."""
    check_architecture(model)
    if not model.cfg.use_attn_result:
        raise ValueError("export_weights needs a model loaded with use_attn_result=True (load_model does this)")
    ablator = Ablator(model, reference_batch().toks)
    cfg = model.cfg
    layers = []
    for layer in range(cfg.n_layers):
        block = model.blocks[layer]
        layers.append(
            {
                "ln_w": _values(block.ln1.w),
                "ln_b": _values(block.ln1.b),
                "W_Q": _values(block.attn.W_Q),
                "b_Q": _values(block.attn.b_Q),
                "W_K": _values(block.attn.W_K),
                "b_K": _values(block.attn.b_K),
                "W_V": _values(block.attn.W_V),
                "b_V": _values(block.attn.b_V),
                "W_O": _values(block.attn.W_O),
                "b_O": _values(block.attn.b_O),
                "mean_result": _values(ablator.means[get_act_name("result", layer)].permute(1, 0, 2)),
            }
        )
    return {
        "checkpoint_sha256": checkpoint_sha256,
        "reference": f"PalindromeDataset({REFERENCE_SIZE}) (seed 42)",
        "config": {
            "n_layers": cfg.n_layers,
            "n_heads": cfg.n_heads,
            "d_model": cfg.d_model,
            "d_head": cfg.d_head,
            "n_ctx": cfg.n_ctx,
            "eps": cfg.eps,
            "attn_scale": float(cfg.attn_scale),
            "start": START,
            "end": END,
            "max_value": MAX_VALUE,
            "mirror": [MIRROR.get(p, -1) for p in range(SEQ_LEN)],
        },
        "W_E": _values(model.W_E),
        "W_pos": _values(model.W_pos),
        "layers": layers,
        "ln_final_w": _values(model.ln_final.w),
        "ln_final_b": _values(model.ln_final.b),
        "W_U": _values(model.W_U),
        "b_U": _values(model.b_U),
        "examples": examples(),
    }


def export_script(model: Optional[HookedTransformer] = None, checkpoint: Optional[PathLike] = None) -> str:
    """The export as a script that defines ``window.PALINDROME_LIVE_WEIGHTS`` (works from file:// too)."""
    path = resolve_checkpoint(checkpoint)
    if model is None:
        model = load_model(path, device="cpu")
    data = export_weights(model, sha256_file(path))
    return f"window.{GLOBAL} = {json.dumps(data, separators=(',', ':'))};\n"


def write_export(directory: PathLike, checkpoint: Optional[PathLike] = None) -> Path:
    """Write the export into ``directory`` (the build's static folder) and return its path."""
    directory = check_folder("directory", directory)
    script = export_script(checkpoint=checkpoint)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / EXPORT_NAME
    part = target.with_suffix(".part")
    part.write_text(script)
    part.replace(target)
    return target


def read_export(path: PathLike) -> dict[str, Any]:
    """The JSON payload of a written export (for tests and checks)."""
    text = check_file("path", path).read_text()
    prefix = f"window.{GLOBAL} = "
    if not text.startswith(prefix):
        raise ValueError(f"{path} is not a palindrome live export (it must start with {prefix!r})")
    return json.loads(text[len(prefix) :].rstrip().rstrip(";"))


ABLATION_KINDS: tuple[str, ...] = ("none", "zero", "mean")
"""What the page's switch per head offers."""


def page_outputs(
    model: HookedTransformer, toks: TokensLike, head: Optional[str] = None, kind: str = "none"
) -> dict[str, Tensor]:
    """What the page shows, as PyTorch computes it with the package's engines, per sequence.

    ``head`` ("0.1", ...) is ablated by ``kind`` ("zero" or "mean", means over ``reference_batch``,
    through ``palindrome.ablation.Ablator``). Keys: "p_palindrome" [batch], "logit_diff" [batch]
    (not palindrome - palindrome), "patterns" [batch, layer*head, dest, src], "dla" [batch, component]
    (chapter 3's ``component_attribution``: before the final LayerNorm, ``COMPONENTS`` order) and
    "direct" [batch, component] (the same divided by the final LayerNorm scale).
    """
    if kind not in ABLATION_KINDS:
        raise ValueError(f"kind must be one of {ABLATION_KINDS}, got {kind!r}")
    if (head is None) != (kind == "none"):
        raise ValueError(
            f"give a head ('0.0' ... '1.1') exactly when kind is 'zero' or 'mean'; got head={head!r}, kind={kind!r}"
        )
    ablations = []
    if head is not None:
        if head not in HEAD_NAMES:
            raise ValueError(f"head must be one of {HEAD_NAMES}, got {head!r}")
        layer, index = (int(x) for x in head.split("."))
        ablations = [Ablation(layer, index, "result", kind)]
    ablator = Ablator(model, reference_batch().toks)
    names = [get_act_name("embed"), get_act_name("pos_embed"), FINAL_SCALE]
    names += [get_act_name(act, layer) for layer in range(model.cfg.n_layers) for act in ("result", "pattern")]
    logits, cache = cached_run(model, toks, names, ablator.hooks(ablations))
    end = logits[:, -1].float()
    direction = nonpal_direction(model)
    dla = components_from_cache(model, cache)[:, :, -1] @ direction  # [component, batch]
    scale = cache[FINAL_SCALE][:, -1, 0]
    patterns = torch.cat([cache[get_act_name("pattern", layer)] for layer in range(model.cfg.n_layers)], dim=1)
    return {
        "p_palindrome": end.softmax(-1)[:, 1].cpu(),
        "logit_diff": (end[:, 0] - end[:, 1]).cpu(),
        "patterns": patterns.cpu(),
        "dla": dla.T.cpu(),
        "direct": (dla / scale).T.cpu(),
    }


LIVE_ASSETS: Path = Path(__file__).resolve().parents[2] / "_ext" / "live"
"""The page's JavaScript and CSS (in the repository beside the Sphinx extension that serves them)."""
PAGE_HTML: str = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Palindrome classifier, live</title>
<link rel="stylesheet" href="palindrome_live.css">
<script src="circuitsvis.js"></script>
<script src="{export}"></script>
<script src="palindrome_live.js"></script>
</head><body><main><h1>Palindrome classifier, live</h1>
<div id="palindrome-live" class="palindrome-live"></div></main></body></html>
"""


def write_page(directory: PathLike, checkpoint: Optional[PathLike] = None) -> Path:
    """A standalone copy of the "Try it" widget in ``directory`` (index.html, scripts, export); opens from file://
    too."""
    import shutil

    if not LIVE_ASSETS.is_dir():
        raise ValueError(f"the page's scripts are not at {LIVE_ASSETS}; write_page needs a checkout of the repository")
    target = write_export(check_folder("directory", directory), checkpoint).parent
    for name in ("palindrome_live.js", "palindrome_live.css"):
        shutil.copyfile(LIVE_ASSETS / name, target / name)
    shutil.copyfile(library_file("circuitsvis.js"), target / "circuitsvis.js")
    page = target / "index.html"
    page.write_text(PAGE_HTML.format(export=EXPORT_NAME))
    return page
