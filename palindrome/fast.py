"""A fast forward pass to the END logits, in plain torch, from a HookedTransformer's own weights.

The classifier only reads the logits at END, so three exact rewrites of the forward pass
skip most of the work while giving the same numbers (to float rounding) as ``model(toks)[:, -1]``:

1. Layer 0 sees only ``W_E[token] + W_pos[position]``: 33 tokens x 22 positions. Its LayerNorm,
   queries, keys and values are computed once for all 726 pairs and then looked up per token.
2. Layer 1 needs a query only at END. Instead of projecting keys at every position, END's
   query is pulled back through ``W_K`` into the residual space (one direction per head).
3. Attention weights sum to 1, so layer 1 mixes the normalised residuals first and applies
   ``W_V @ W_O`` once per head, not once per position.

``EndOnlyForward.forward`` (differentiable, used for training) stops there. ``end_logits``
(inference) rewrites three more things, again exactly:

4. Softmax is unchanged by subtracting any constant from a row of scores. For each query row of
   the table the largest score it can reach over the keys it may attend to is known in advance,
   so the scores need no max pass: ``exp(score - bound)`` never overflows, and a column of ones
   appended to the values returns each row's normaliser from the same matrix product. The
   query rows carry a factor log2(e), so that the cheaper ``exp2`` does the exponentials.
5. LayerNorm's centring is linear, so it is applied to the tables (residual rows and ``W_O``)
   once; every residual is then already centred. Layer 1's LayerNorm becomes one scale per
   position, which folds into its attention scores and its mix; its weight and bias fold into
   layer 1's matrices (the bias cancels in the scores).
6. Query, key and value rows are padded to 16 numbers (14 + the bound or the ones + 0): the
   batched matrix products of MKL run about twice as fast at that width as at 14 or 15.

The pieces are public for chapters that change one part of the pass: ``tables(ln0_scale)`` builds the
layer-0 tables with one constant LayerNorm scale (chapter 2's approximation) or one per position, ``centred_layer0``
returns the residual stream after layer 0, ``logits_from_layer0`` runs layer 1 on it,
``head_output`` gives one layer-0 head's output, and ``map_chunks`` runs any per-chunk function
the way ``end_logits`` does.

If a row's scores all sit far below its bound (``MIN_NORMALISER``), that chunk is recomputed by
the plain softmax path, so the shortcut can cost time but never accuracy.

Every parameter is read from the live model on each call (nothing is cached between calls), so
the same code serves processed weights from ``load_model``, fresh ones from ``create_model`` and
a model being trained.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, TypeVar

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from palindrome import constants
from palindrome.tokens import MAX_SAMPLES, TokensLike, check_int, check_sizes, check_torch_generator, validate_tokens

DEFAULT_BATCH_SIZE: int = 1024
"""Sequences per chunk in ``end_logits``: enough to amortise per-op overhead, few enough to stay in cache."""
SCORE_FLOOR: float = -100.0
"""Shifted scores, in powers of two, are clipped to [SCORE_FLOOR, -SCORE_FLOOR] before ``exp2``: the
result stays a normal float (smaller ones take a slow path), and masked entries cannot overflow."""
MIN_NORMALISER: float = 1e-20
"""A query row whose softmax normaliser falls below this (its best score is more than 66 powers of two
under its bound) sends the chunk to the plain softmax path: clipping is then no longer exact."""
T = TypeVar("T")
ROW_WIDTH: int = 8
"""Query, key and value rows of the inference path are padded to a multiple of this many numbers."""


def check_architecture(model: HookedTransformer, classifier_shape: bool = False) -> HookedTransformer:
    """Return ``model``, or raise ValueError unless it is a 2-layer, attention-only, LayerNorm HookedTransformer (with
    ``classifier_shape``, also of the palindrome classifier's sizes: 2 heads a layer, 22 positions, 33 tokens)."""
    if not isinstance(classifier_shape, bool):
        raise ValueError(f"classifier_shape must be True or False, got {classifier_shape!r}")
    if not isinstance(model, HookedTransformer):
        raise ValueError(f"expected a HookedTransformer, got {type(model).__name__}")
    cfg = model.cfg
    expected = {
        "n_layers": constants.N_LAYERS,
        "attn_only": True,
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "attention_dir": "causal",
        "d_vocab_out": constants.D_VOCAB_OUT,
        "use_attention_sinks": False,
        "use_logn_attn": False,
        "clip_qkv": None,
    }
    wrong = [
        f"{name}={getattr(cfg, name, None)!r} (need {value!r})"
        for name, value in expected.items()
        if getattr(cfg, name, None) != value
    ]
    for cap in ("attn_scores_soft_cap", "output_logits_soft_cap"):
        if (getattr(cfg, cap, None) or -1.0) > 0:
            wrong.append(f"{cap}={getattr(cfg, cap)} (need none)")
    if cfg.n_key_value_heads not in (None, cfg.n_heads):
        wrong.append(f"n_key_value_heads={cfg.n_key_value_heads} (need {cfg.n_heads})")
    if wrong:
        raise ValueError(
            "the fast path supports the palindrome architecture only (2 attention-only layers, "
            "LayerNorm, learned positions, causal attention); this model has " + ", ".join(wrong)
        )
    if classifier_shape:
        sizes = {"n_heads": constants.N_HEADS, "n_ctx": constants.SEQ_LEN, "d_vocab": constants.D_VOCAB}
        wrong = [f"{k}={getattr(cfg, k)} (need {v})" for k, v in sizes.items() if getattr(cfg, k) != v]
        if wrong:
            raise ValueError("this needs the palindrome classifier's sizes; this model has " + ", ".join(wrong))
    return model


class EndOnlyForward(nn.Module):
    """END logits of a palindrome HookedTransformer, computed from its live parameters."""

    def __init__(self, model: HookedTransformer) -> None:
        super().__init__()
        check_architecture(model)
        self.model = model  # a submodule, so .parameters() are the model's own
        cfg = model.cfg
        self.max_value = cfg.d_vocab - 3
        self.half_length = (cfg.n_ctx - 2) // 2
        if cfg.n_ctx != 2 * self.half_length + 2:
            raise ValueError(f"n_ctx must be even (START, 2N values, END), got {cfg.n_ctx}")
        self.eps = float(cfg.eps)
        # What TransformerLens divides scores by: sqrt(d_head), 1 without use_attn_scale, and so on.
        self.attn_scales = [float(block.attn.attn_scale) for block in model.blocks]

    @classmethod
    def from_model(cls, model: HookedTransformer) -> "EndOnlyForward":
        """Wrap ``model`` (no weights are copied; later updates to it are seen)."""
        return cls(model)

    def validate(self, toks: TokensLike) -> Int[Tensor, "batch seq"]:
        """Check tokens against this model's length and vocabulary; move them to its device."""
        toks = validate_tokens(toks, half_length=self.half_length, max_value=self.max_value)
        return toks.to(self.model.W_E.device)

    def forward(self, toks: TokensLike) -> Float[Tensor, "batch 2"]:
        """Differentiable END logits (not palindrome, palindrome) for a batch of tokens."""
        toks = self.validate(toks)
        return self.logits_from_tables(self.tables(), toks)

    @torch.inference_mode()
    def end_logits(self, toks: TokensLike, batch_size: int = DEFAULT_BATCH_SIZE) -> Float[Tensor, "batch 2"]:
        """END logits without autograd, in chunks of ``batch_size`` sequences."""
        batch_size = check_int("batch_size", batch_size, 1)
        toks = self.validate(toks)
        tables = self.inference_tables()
        chunks = toks.split(batch_size)
        results = map_chunks(lambda chunk: self.logits_from_inference_tables(tables, chunk), chunks)
        logits = [chunk_logits for chunk_logits, _ in results]
        smallest = torch.stack([normaliser for _, normaliser in results]).cpu()  # one sync
        redo = torch.nonzero(smallest < MIN_NORMALISER).flatten().tolist()
        if redo:
            plain = self.tables()
            for i in redo:
                logits[i] = self.logits_from_tables(plain, chunks[i])  # plain softmax path
        return torch.cat(logits)

    def tables(self, ln0_scale: Optional[float | Tensor] = None) -> Tables:
        """Everything ``logits_from_tables`` needs that does not depend on the tokens.

        ``ln0_scale``: divide every layer-0 residual by this one number instead of its own
        LayerNorm scale (chapter 2's constant-scale approximation), or by one number per position
        (a tensor of ``n_ctx`` scales); None: the exact model.
        """
        m = self.model
        block0, attn0, attn1 = m.blocks[0], m.blocks[0].attn, m.blocks[1].attn
        resid = m.pos_embed.W_pos[:, None, :] + m.W_E[None, :, :]  # [pos, vocab, d_model]
        resid = resid.reshape(-1, m.cfg.d_model)  # row = pos * d_vocab + token
        # F.layer_norm is TransformerLens's LayerNorm: centre, divide by sqrt(mean(x^2) + eps), w, b.
        if ln0_scale is None:
            normed = F.layer_norm(resid, resid.shape[-1:], block0.ln1.w, block0.ln1.b, self.eps)
        else:
            centred = resid - resid.mean(-1, keepdim=True)
            normed = centred / self._ln0_row_scales(ln0_scale) * block0.ln1.w + block0.ln1.b
        q = einops.einsum(normed, attn0.W_Q, "row d, head d e -> head row e") + attn0.b_Q[:, None]
        k = einops.einsum(normed, attn0.W_K, "row d, head d e -> head row e") + attn0.b_K[:, None]
        v = einops.einsum(normed, attn0.W_V, "row d, head d e -> head row e") + attn0.b_V[:, None]
        # END's layer-1 query, pulled back through W_K: score(key) = normed_key . key_dir, where
        # key_dir = normed_END @ W_QK + b_QK. (q . b_K adds the same to every key's score, so
        # softmax ignores it and it is left out.)
        W_QK = attn1.W_Q @ attn1.W_K.transpose(-1, -2) / self.attn_scales[1]
        b_QK = einops.einsum(attn1.b_Q, attn1.W_K, "head e, head d e -> head d") / self.attn_scales[1]
        return Tables(
            resid=resid + attn0.b_O,  # b_O is added at every position, so it rides with the residual
            q=(q / self.attn_scales[0]).contiguous(),  # contiguous rows gather fastest
            k=k.contiguous(),
            v=v.contiguous(),
            vo=v @ attn0.W_O,
            W_QK=einops.rearrange(W_QK, "head d_q d_k -> d_q (head d_k)"),
            b_QK=b_QK.flatten(),
            W_OV=(attn1.W_V @ attn1.W_O).flatten(0, 1),
            # Attention weights sum to 1, so each head's b_V contributes exactly b_V @ W_O.
            b_OV=einops.einsum(attn1.b_V, attn1.W_O, "head e, head e d -> d") + attn1.b_O,
        )

    def _ln0_row_scales(self, ln0_scale: float | Tensor) -> Float[Tensor, "pos_vocab 1"] | float:
        """``ln0_scale`` checked, as what each table row (``pos * d_vocab + token``) is divided by."""
        n_ctx, d_vocab = self.model.cfg.n_ctx, self.model.cfg.d_vocab
        if isinstance(ln0_scale, Tensor):
            if ln0_scale.shape != (n_ctx,) or not (torch.isfinite(ln0_scale) & (ln0_scale > 0)).all():
                raise ValueError(
                    f"ln0_scale as a tensor must hold {n_ctx} positive finite scales (one per position), got shape "
                    f"{tuple(ln0_scale.shape)}"
                )
            return ln0_scale.float().to(self.model.W_E.device).repeat_interleave(d_vocab)[:, None]
        if isinstance(ln0_scale, bool) or not isinstance(ln0_scale, (int, float)) or not 0 < ln0_scale < math.inf:
            raise ValueError(
                f"ln0_scale must be a positive finite number (a LayerNorm scale), {n_ctx} of them (one per "
                f"position) or None, got {ln0_scale!r}"
            )
        return ln0_scale

    def logits_from_tables(self, tables: Tables, toks: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch 2"]:
        """END logits for validated tokens, given ``tables()`` (so that batches can share them)."""
        m = self.model
        n_heads, d_model = m.cfg.n_heads, m.cfg.d_model
        batch = toks.shape[0]
        resid = self.layer0_from_tables(tables, toks)

        # Layer 1: only END's query matters, and END attends to every position (no mask).
        ln1 = m.blocks[1].ln1
        normed = F.layer_norm(resid, (d_model,), ln1.w, ln1.b, self.eps)
        key_dir = (normed[:, -1] @ tables.W_QK + tables.b_QK).view(batch, n_heads, d_model)
        pattern = (key_dir @ normed.transpose(1, 2)).softmax(-1)  # [batch, head, key]
        mixed = pattern @ normed  # [batch, head, d_model]: attention-weighted mean of normed residuals
        attn_out = mixed.flatten(1) @ tables.W_OV + tables.b_OV

        final = resid[:, -1] + attn_out
        final = F.layer_norm(final, (d_model,), m.ln_final.w, m.ln_final.b, self.eps)
        return final @ m.W_U + m.b_U

    def layer0_from_tables(self, tables: Tables, toks: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch seq d_model"]:
        """The residual stream after layer 0 for validated tokens, from ``tables()`` (plain softmax)."""
        rows, causal = self._rows(toks), self._causal(tables, toks)
        resid = _lookup(tables.resid, rows)  # [batch, seq, d_model]
        for head in range(len(tables.q)):  # one head at a time
            resid = torch.baddbmm(resid, self._pattern(tables, head, rows, causal), _lookup(tables.vo[head], rows))
        return resid

    @torch.inference_mode()
    def head_output(self, toks: TokensLike, head: int) -> Float[Tensor, "batch seq d_model"]:
        """What layer-0 head ``head`` writes at every position (its pattern times ``v @ W_O``, without ``b_O``), from
        ``tables()``."""
        head = check_int("head", head, 0, maximum=self.model.cfg.n_heads - 1)
        toks = self.validate(toks)
        tables = self.tables()
        rows, causal = self._rows(toks), self._causal(tables, toks)
        return torch.bmm(self._pattern(tables, head, rows, causal), _lookup(tables.vo[head], rows))

    def _rows(self, toks: Int[Tensor, "batch seq"]) -> Int[Tensor, "batch seq"]:
        return toks + torch.arange(toks.shape[1], device=toks.device) * self.model.cfg.d_vocab

    @staticmethod
    def _causal(tables: Tables, toks: Int[Tensor, "batch seq"]) -> Float[Tensor, "seq seq"]:
        seq = toks.shape[1]
        return torch.full((seq, seq), float("-inf"), dtype=tables.q.dtype, device=toks.device).triu(1)

    @staticmethod
    def _pattern(
        tables: Tables, head: int, rows: Int[Tensor, "batch seq"], causal: Tensor
    ) -> Float[Tensor, "batch seq seq"]:
        q, k = _lookup(tables.q[head], rows), _lookup(tables.k[head], rows)  # [batch, seq, d_head]
        return torch.baddbmm(causal, q, k.transpose(1, 2)).softmax(-1)  # [batch, query, key]

    def inference_tables(self, ln0_scale: Optional[float | Tensor] = None) -> InferenceTables:
        """``tables(ln0_scale)`` rearranged for ``logits_from_inference_tables`` (rewrites 4-6 of the module doc)."""
        m, base = self.model, self.tables(ln0_scale)
        d_vocab, seq = m.cfg.d_vocab, m.cfg.n_ctx
        position = torch.arange(seq, device=base.q.device).repeat_interleave(d_vocab)  # of each row
        may_attend = position[None, :] <= position[:, None]  # [query row, key row]: causal
        scores = (base.q @ base.k.transpose(-1, -2)).masked_fill(~may_attend, float("-inf"))
        bound = scores.amax(-1, keepdim=True)  # [head, row, 1]: no query row scores higher
        ones = torch.ones_like(bound)
        attn0 = m.blocks[0].attn
        W_O = attn0.W_O - attn0.W_O.mean(-1, keepdim=True)  # centred output directions
        width = _padded(base.q.shape[-1] + 1)
        # Layer 1 on centred residuals c: LayerNorm(c) = scale * c * w + b, with scale = 1 / rms(c).
        ln1 = m.blocks[1].ln1
        w = ln1.w.repeat(m.cfg.n_heads)  # per (head, d_model) column of W_QK, row of W_OV
        return InferenceTables(
            resid=(base.resid - base.resid.mean(-1, keepdim=True)).contiguous(),
            q=_pad_columns(torch.cat([base.q, -bound], -1) * math.log2(math.e), width),
            k=_pad_columns(torch.cat([base.k, ones], -1), width),
            v=_pad_columns(torch.cat([base.v, ones], -1), width),
            W_O=_pad_columns(W_O.transpose(-1, -2), width).transpose(-1, -2).contiguous(),
            allowed=torch.ones(seq, seq, device=base.q.device).tril(),
            row_offsets=torch.arange(seq, device=base.q.device) * d_vocab,
            mean_weights=torch.full((m.cfg.d_model,), 1 / m.cfg.d_model, device=base.q.device),
            # END's key direction, times w (the keys are c * w): scale * (c_END @ W_key) + b_key.
            W_key=ln1.w[:, None] * base.W_QK * w,
            b_key=(ln1.b @ base.W_QK + base.b_QK) * w,
            # The mix of normed residuals is w * (mix of scale * c) + b; w and b fold into W_OV.
            W_out=w[:, None] * base.W_OV,
            b_out=ln1.b.repeat(m.cfg.n_heads) @ base.W_OV + base.b_OV,
        )

    def logits_from_inference_tables(
        self, tables: InferenceTables, toks: Int[Tensor, "batch seq"]
    ) -> tuple[Float[Tensor, "batch 2"], Float[Tensor, ""]]:
        """END logits for validated tokens and the smallest layer-0 softmax normaliser met."""
        resid, normaliser = self.layer0_from_inference_tables(tables, toks)
        return self.logits_from_layer0(tables, resid), normaliser

    def layer0_from_inference_tables(
        self, tables: InferenceTables, toks: Int[Tensor, "batch seq"]
    ) -> tuple[Float[Tensor, "batch seq d_model"], Float[Tensor, ""]]:
        """The centred residual stream after layer 0 for validated tokens, and the smallest softmax normaliser met."""
        m = self.model
        d_model, d_head = m.cfg.d_model, m.cfg.d_head
        rows = toks + tables.row_offsets  # [batch, seq]
        resid = _lookup(tables.resid, rows)  # [batch, seq, d_model], already centred
        largest_inverse = []
        for q_table, k_table, v_table, W_O in zip(tables.q, tables.k, tables.v, tables.W_O, strict=True):
            q, k = _lookup(q_table, rows), _lookup(k_table, rows)  # [batch, seq, width]
            # (q.k - bound) * log2(e), clipped, exponentiated, masked: softmax without its max pass.
            weights = torch.bmm(q, k.transpose(1, 2)).clamp_(SCORE_FLOOR, -SCORE_FLOOR).exp2_()
            weights.mul_(tables.allowed)
            mixed = torch.bmm(weights, _lookup(v_table, rows))  # [batch, query, (z, normaliser, 0...)]
            inverse = mixed[..., d_head : d_head + 1].reciprocal()  # 1 / normaliser, contiguous
            largest_inverse.append(inverse.amax())
            mixed.mul_(inverse)  # z (the normaliser column becomes 1; W_O ignores it)
            resid.view(-1, d_model).addmm_(mixed.view(-1, mixed.shape[-1]), W_O)
        return resid, torch.stack(largest_inverse).amax().reciprocal()

    def centred_layer0(
        self, tables: InferenceTables, toks: Int[Tensor, "batch seq"], ln0_scale: Optional[float | Tensor] = None
    ) -> Float[Tensor, "batch seq d_model"]:
        """``layer0_from_inference_tables`` for ``inference_tables(ln0_scale)``, redone by the plain softmax where
        clipping is not exact."""
        resid, normaliser = self.layer0_from_inference_tables(tables, toks)
        if normaliser < MIN_NORMALISER:
            resid = self.layer0_from_tables(self.tables(ln0_scale), toks)
            resid = resid - resid.mean(-1, keepdim=True)
        return resid

    def logits_from_layer0(
        self, tables: InferenceTables, resid: Float[Tensor, "batch seq d_model"]
    ) -> Float[Tensor, "batch 2"]:
        """END logits from the centred residual stream after layer 0 (layer 1, LayerNorm folded into ``tables``)."""
        m = self.model
        n_heads, d_model = m.cfg.n_heads, m.cfg.d_model
        batch, seq = resid.shape[:2]

        # Layer 1 (only END's query) on the centred residuals, LayerNorm folded into the tables.
        mean_square = resid.square().view(-1, d_model) @ tables.mean_weights  # [batch * seq]
        scale = mean_square.add_(self.eps).rsqrt_().view(batch, seq)
        end = resid[:, -1]
        key_dir = torch.addmm(tables.b_key, end * scale[:, -1:], tables.W_key)
        scores = torch.bmm(key_dir.view(batch, n_heads, d_model), resid.transpose(1, 2))
        weights = scores.mul_(scale[:, None]).softmax(-1).mul_(scale[:, None])  # [batch, head, key]
        mixed = torch.bmm(weights, resid).flatten(1)  # [batch, head * d_model]
        # LayerNorm ignores a shift along (1, ..., 1), so the centred END residual serves here too.
        final = torch.addmm(end, mixed, tables.W_out).add_(tables.b_out)
        final = F.layer_norm(final, (d_model,), m.ln_final.w, m.ln_final.b, self.eps)
        return torch.addmm(m.b_U, final, m.W_U)


@dataclass(frozen=True)
class Tables:
    """Token-independent tensors of the fast path, recomputed from the weights on each call.

    Layer 0 rows are indexed by ``pos * d_vocab + token``. Layer 1's W_QK/b_QK give END's key
    direction, W_OV/b_OV its output.
    """

    resid: Float[Tensor, "pos_vocab d_model"]
    q: Float[Tensor, "head pos_vocab d_head"]  # already divided by the attention scale
    k: Float[Tensor, "head pos_vocab d_head"]
    v: Float[Tensor, "head pos_vocab d_head"]
    vo: Float[Tensor, "head pos_vocab d_model"]  # what each token writes when attended to
    W_QK: Float[Tensor, "d_model head_d_model"]
    b_QK: Float[Tensor, " head_d_model"]
    W_OV: Float[Tensor, "head_d_model d_model"]
    b_OV: Float[Tensor, " d_model"]


@dataclass(frozen=True)
class InferenceTables:
    """Token-independent tensors of ``end_logits`` (rewrites 4-6 of the module doc).

    Rows are indexed by ``pos * d_vocab + token`` (``row_offsets`` holds ``pos * d_vocab``). Query
    rows end with minus their bound, key and value rows with a one, all padded with zeros.
    """

    resid: Float[Tensor, "pos_vocab d_model"]  # centred
    q: Float[Tensor, "head pos_vocab width"]  # (q / attn_scale, -bound, 0...) * log2(e)
    k: Float[Tensor, "head pos_vocab width"]  # (k, 1, 0...)
    v: Float[Tensor, "head pos_vocab width"]  # (v, 1, 0...)
    W_O: Float[Tensor, "head width d_model"]  # centred rows, zeros for the extra columns
    allowed: Float[Tensor, "seq seq"]  # 1 where the query may attend to the key
    row_offsets: Int[Tensor, " seq"]
    mean_weights: Float[Tensor, " d_model"]  # 1 / d_model each: a mean as a matrix product (faster)
    W_key: Float[Tensor, "d_model head_d_model"]
    b_key: Float[Tensor, " head_d_model"]
    W_out: Float[Tensor, "head_d_model d_model"]
    b_out: Float[Tensor, " d_model"]


def _padded(width: int) -> int:
    return -(-width // ROW_WIDTH) * ROW_WIDTH


def _pad_columns(table: Float[Tensor, "... rows cols"], width: int) -> Float[Tensor, "... rows width"]:
    return F.pad(table, (0, width - table.shape[-1])).contiguous()


def _lookup(table: Float[Tensor, "rows dim"], index: Int[Tensor, "*shape"]) -> Float[Tensor, "*shape dim"]:
    # index_select rather than F.embedding: its backward (index_add_) is about twice as fast on CPU.
    return table.index_select(0, index.flatten()).view(*index.shape, table.shape[-1])


@contextmanager
def num_threads(threads: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (None: unchanged), then restore it."""
    if threads is not None:
        threads = check_int("threads", threads, 1, " or None (leave torch's setting)")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def map_chunks(fn: Callable[[Tensor], T], chunks: Sequence[Tensor], progress: Optional[str] = None) -> list[T]:
    """``[fn(chunk) for chunk in chunks]`` in inference mode; on CPU, whole chunks run side by side, one torch thread
    each.

    On CPU these small kernels gain little from torch's threads, and stall on their barriers when
    other processes share the cores; torch releases the GIL inside kernels, so threads over
    chunks use the cores instead. ``progress``: a progress-bar label (None: no bar).
    """
    if not callable(fn):
        raise ValueError(f"fn must be a function of one tensor, got {fn!r:.60} ({type(fn).__name__})")
    if not isinstance(chunks, (list, tuple)) or not all(isinstance(c, Tensor) for c in chunks):
        raise ValueError(
            f"chunks must be a list or tuple of tensors (such as toks.split(n)), got {chunks!r:.60} "
            f"({type(chunks).__name__})"
        )
    if progress is not None and not isinstance(progress, str):
        raise ValueError(f"progress must be None or a progress-bar label (a str), got {progress!r}")
    chunks = list(chunks)
    bar = tqdm(total=len(chunks), desc=progress, disable=progress is None)

    def run(chunk: Tensor) -> T:
        with torch.inference_mode():  # thread-local, so entered again in each worker
            result = fn(chunk)
        bar.update()
        return result

    workers = min(torch.get_num_threads(), len(chunks))
    try:
        if workers <= 1 or chunks[0].device.type != "cpu":
            return [run(chunk) for chunk in chunks]
        with num_threads(1), ThreadPoolExecutor(workers) as pool:
            return list(pool.map(run, chunks))
    finally:
        bar.close()


def random_tokens(
    n: int,
    generator: Optional[torch.Generator] = None,
    max_value: int = constants.MAX_VALUE,
    half_length: int = constants.HALF_LENGTH,
) -> Int[Tensor, "n seq"]:
    """``n`` sequences START, 2N uniform values 0..max_value, END (mostly not palindromes)."""
    n, (half_length, max_value) = check_int("n", n, 1, maximum=MAX_SAMPLES), check_sizes(half_length, max_value)
    generator = check_torch_generator(generator)
    values = torch.randint(0, max_value + 1, (n, 2 * half_length), generator=generator)
    start = torch.full((n, 1), max_value + 1)
    end = torch.full((n, 1), max_value + 2)
    return torch.cat([start, values, end], dim=1)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EndOnlyForward",
    "InferenceTables",
    "MIN_NORMALISER",
    "SCORE_FLOOR",
    "Tables",
    "check_architecture",
    "map_chunks",
    "num_threads",
    "random_tokens",
]
