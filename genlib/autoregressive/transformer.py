r"""A causal transformer: every position attends to all the positions before it, and to none after.

Self-attention computes, for each position :math:`i`, a weighted average of value vectors :math:`v_j`
with weights from the match of a query :math:`q_i` with the keys :math:`k_j`:

.. math::
    A_{ij} = \frac{\exp(s_{ij})}{\sum_{j'} \exp(s_{ij'})}, \qquad
    s_{ij} = \begin{cases} q_i^\top k_j / \sqrt{d} & j \le i \\ -\infty & j > i \end{cases}, \qquad
    y_i = \sum_j A_{ij} v_j .

Setting the scores of later positions to :math:`-\infty` before the softmax (the **causal mask**)
makes their weights exactly zero, so output :math:`i` depends only on inputs :math:`0..i`. The model
reads ``BOS, x_0, ..., x_{T-2}`` and its output at position :math:`t` parametrises
:math:`P(x_t \mid x_{<t})`: unlike an n-gram table it keeps the whole context, and unlike an RNN it
looks at every earlier token directly. All :math:`T` conditionals are computed in one parallel pass
(teacher forcing), while sampling still takes :math:`T` sequential steps; a cache of the keys and
values of past positions makes each step cost :math:`O(t)` instead of a full pass over the prefix.

:func:`masked_attention` writes the computation out; :class:`CausalSelfAttention` uses it, or, with
``fused=True``, PyTorch's fused ``scaled_dot_product_attention(..., is_causal=True)``, which computes the
same thing without forming the :math:`T \times T` matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genlib.autoregressive.training import extends_by_one
from genlib.validation import check_positive_int, check_tensor

__all__ = ["causal_mask", "masked_attention", "causal_attention", "CausalSelfAttention", "CausalTransformer"]


def causal_mask(length: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    r"""The causal mask :math:`M_{ij} = [j \le i]`: shape ``(T, T)``, ``torch.bool``, lower triangular.

    Row :math:`i` (a query position) is ``True`` at the key positions it may attend to: itself and
    everything before it.
    """
    length = check_positive_int(length, "length")
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Masked scaled dot-product attention: :math:`y = \mathrm{softmax}(QK^\top/\sqrt d + \log M)\,V`.

    Args:
        q: queries, shape ``(..., T_q, d)``, floating.
        k: keys, shape ``(..., T_k, d)``.
        v: values, shape ``(..., T_k, d_v)``.
        mask: ``None`` (attend everywhere) or ``torch.bool`` broadcastable to ``(..., T_q, T_k)``,
            ``True`` where a query may attend to a key. Every query must be allowed at least one key.

    Returns:
        ``(y, weights)``: the outputs, shape ``(..., T_q, d_v)``, and the attention weights
        :math:`A`, shape ``(..., T_q, T_k)``, rows summing to one and exactly zero where the mask is
        ``False``.
    """
    q = check_tensor(q, "q", floating=True)
    k = check_tensor(k, "k", floating=True)
    v = check_tensor(v, "v", floating=True)
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError("q, k and v must have shape (..., T, d)")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"q (..., T_q, d), k (..., T_k, d) and v (..., T_k, d_v) do not match: got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError("mask must be a torch.bool tensor (True = may attend)")
        if not bool(mask.any(dim=-1).all()):
            raise ValueError("mask must allow every query at least one key (a row of False has no softmax)")
        scores = scores.masked_fill(~mask, -math.inf)  # exp(-inf) = 0: masked keys get no weight
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Causal self-attention: :func:`masked_attention` with :func:`causal_mask` (query i sees keys j <= i).

    Args:
        q, k, v: shape ``(..., T, d)`` (the same ``T`` for all three), floating.

    Returns:
        ``(y, weights)`` of shapes ``(..., T, d)`` and ``(..., T, T)``; the weights are lower triangular.
        ``y`` equals ``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)``.
    """
    q = check_tensor(q, "q", floating=True)
    if q.dim() < 2 or k.shape[-2] != q.shape[-2]:
        raise ValueError(
            f"q and k must have shape (..., T, d) with the same T, got {tuple(q.shape)}, {tuple(k.shape)}"
        )
    return masked_attention(q, k, v, causal_mask(q.shape[-2], device=q.device))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with an output projection (as in nanoGPT).

    Args:
        d_model: width of the residual stream, divisible by ``num_heads``.
        num_heads: number of heads; each attends in a space of ``d_model // num_heads`` dimensions.
        fused: use ``F.scaled_dot_product_attention(is_causal=True)`` instead of :func:`causal_attention`.
            Same outputs, less memory; the explicit version also keeps its attention weights in
            ``self.last_weights`` (shape ``(B, heads, T, T)``) for plotting.
    """

    def __init__(self, d_model: int, num_heads: int, *, fused: bool = False) -> None:
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(num_heads, "num_heads")
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.num_heads, self.fused = num_heads, fused
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.last_weights: torch.Tensor | None = None

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)  # 3 x (B, T, d)
        split = (batch, length, self.num_heads, width // self.num_heads)
        return tuple(t.view(split).transpose(1, 2) for t in (q, k, v))  # 3 x (B, nh, T, hs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, d)`` -> ``(B, T, d)``; output ``t`` depends on inputs ``0..t`` only."""
        q, k, v = self._heads(x)
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y, self.last_weights = causal_attention(q, k, v)  # (B, nh, T, hs), (B, nh, T, T)
        return self.proj(y.transpose(1, 2).reshape(x.shape))

    def step(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """New positions ``x`` ``(B, t_new, d)`` attending to the cached keys and values and to themselves.

        ``cache`` holds the keys and values ``(B, nh, t_old, hs)`` of the earlier positions (``None``: none).
        Returns the outputs ``(B, t_new, d)`` and the cache extended by the new positions.
        """
        q, k, v = self._heads(x)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        t_new, t_all = q.shape[2], k.shape[2]
        # New query i sits at position t_all - t_new + i: it may see keys 0 .. that position.
        mask = torch.ones(t_new, t_all, dtype=torch.bool, device=x.device).tril(diagonal=t_all - t_new)
        y, _ = masked_attention(q, k, v, mask)
        return self.proj(y.transpose(1, 2).reshape(x.shape)), (k, v)


class _Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, num_heads: int, fused: bool) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, num_heads, fused=fused)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))

    def step(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None):
        attended, cache = self.attn.step(self.ln1(x), cache)
        x = x + attended
        return x + self.mlp(self.ln2(x)), cache


class CausalTransformer(nn.Module):
    """A small decoder-only transformer over tokens ``0 .. V-1`` (begin-of-sequence token ``V``).

    Token and learned position embeddings, ``num_layers`` pre-norm blocks of causal self-attention and
    an MLP, a final layer norm and a linear read-out.

    Args:
        vocab_size: :math:`V`.
        context_length: the longest sequence it scores or samples (positions ``0 .. context_length-1``).
        d_model: width of the residual stream.
        num_heads: attention heads per block.
        num_layers: number of blocks.
        fused: use PyTorch's fused causal attention (see :class:`CausalSelfAttention`).
        seed: parameters initialised under ``torch.manual_seed(seed)`` in ``torch.random.fork_rng``.

    Shapes: :meth:`forward` maps ``(B, T)`` ``torch.long`` with ``T <= context_length`` to logits
    ``(B, T, V)``; row ``t`` depends on ``x[:, :t]`` only.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        *,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        fused: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.context_length = check_positive_int(context_length, "context_length")
        check_positive_int(num_layers, "num_layers")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab_size + 1, d_model)
            self.position = nn.Embedding(context_length, d_model)
            self.blocks = nn.ModuleList(_Block(d_model, num_heads, fused) for _ in range(num_layers))
            self.ln = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, vocab_size)

    @property
    def bos(self) -> int:
        """Index ``V``, that of the begin-of-sequence token (never produced, only read)."""
        return self.vocab_size

    def _check_tokens(self, x: torch.Tensor, *, extra: int = 0) -> torch.Tensor:
        x = check_tensor(x, "x", ndim=2, floating=False)
        if x.shape[1] + extra > self.context_length:
            raise ValueError(
                f"the model reads at most context_length={self.context_length} positions, got "
                f"{x.shape[1] + extra} (x has shape {tuple(x.shape)})"
            )
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise ValueError(
                f"x must hold tokens in 0..{self.vocab_size - 1}, got {int(x.min())}..{int(x.max())}"
            )
        return x

    def _embed(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        return self.embed(tokens) + self.position(positions)  # (B, T, d)

    def embed_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The embedded inputs ``BOS, x_0, ..., x_{T-2}`` plus positions: ``(B, T, d)``."""
        x = self._check_tokens(x)
        bos = torch.full((x.shape[0], 1), self.bos, dtype=torch.long, device=x.device)
        return self._embed(torch.cat([bos, x[:, :-1]], dim=1))

    def logits_from_embedded(self, h: torch.Tensor) -> torch.Tensor:
        """The blocks and the read-out: ``(B, T, d)`` -> logits ``(B, T, V)``."""
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, V)`` of :math:`P(x_t \\mid x_{<t})` for every position, in one parallel pass."""
        return self.logits_from_embedded(self.embed_inputs(x))

    def next_logits(self, prefix: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, V)`` of the token after ``prefix`` (``(B, t)``, ``t < context_length``), full pass."""
        prefix = self._check_tokens(prefix, extra=1)
        bos = torch.full((prefix.shape[0], 1), self.bos, dtype=torch.long, device=prefix.device)
        return self.logits_from_embedded(self._embed(torch.cat([bos, prefix], dim=1)))[:, -1]

    def incremental(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """A ``next_logits`` with a key-value cache: each new token is one position through each block.

        Called with prefixes that grow by one token per call, step :math:`t` attends over the :math:`t`
        cached positions (:math:`O(t)` work) instead of recomputing the whole prefix (:math:`O(t^2)`
        attention). Any other prefix starts from scratch.
        """
        cache: dict[str, object] = {"prefix": None, "layers": None}

        @torch.no_grad()
        def next_logits(prefix: torch.Tensor) -> torch.Tensor:
            prefix = self._check_tokens(prefix, extra=1)
            grows_by_one = extends_by_one(prefix, cache["prefix"])
            if grows_by_one:
                h, layers = self._embed(prefix[:, -1:], start=prefix.shape[1]), cache["layers"]
            else:
                bos = torch.full((prefix.shape[0], 1), self.bos, dtype=torch.long, device=prefix.device)
                h, layers = self._embed(torch.cat([bos, prefix], dim=1)), [None] * len(self.blocks)
            new_layers = []
            for block, layer_cache in zip(self.blocks, layers, strict=True):
                h, layer_cache = block.step(h, layer_cache)
                new_layers.append(layer_cache)
            cache["prefix"], cache["layers"] = prefix, new_layers
            return self.head(self.ln(h[:, -1]))

        return next_logits
