r"""n-gram models: the chain rule with the context cut to the last :math:`n - 1` tokens, fitted by counting.

By the chain rule every distribution over sequences :math:`x = (x_1, \dots, x_T)` of tokens from a
vocabulary of :math:`V` symbols factorises as

.. math:: P(x) = P(x_1)\, P(x_2 \mid x_1)\, P(x_3 \mid x_1, x_2) \cdots P(x_T \mid x_1, \dots, x_{T-1}).

An **n-gram model** keeps only the last :math:`n - 1` tokens of each context,
:math:`P(x_t \mid x_{<t}) = P(x_t \mid x_{t-n+1}, \dots, x_{t-1})`: a bigram (:math:`n = 2`) keeps
one, a trigram two. Its parameters are a table of :math:`V^{n-1}` conditional distributions, and the
maximum-likelihood table is the normalised count of each n-gram (chapter 00: a categorical MLE per
context). Counts of n-grams that never occurred are zero, which gives unseen text probability zero;
**add-k smoothing** adds :math:`k` to every count,

.. math:: P(x_t = v \mid c) = \frac{N(c, v) + k}{N(c) + kV},

with :math:`N(c, v)` the number of times token :math:`v` followed context :math:`c` and
:math:`N(c) = \sum_v N(c, v)`. With :math:`k = 1` this is Laplace's rule; :math:`k = 0` is the
maximum-likelihood estimate (an unseen context then gets the uniform distribution, the limit
:math:`k \to 0`).

The first :math:`n - 2` tokens of a sequence have shorter contexts; they use the lower-order tables
(:math:`P(x_1)` a unigram, :math:`P(x_2 \mid x_1)` a bigram, ...), so the product above is complete and
the model is a normalised distribution over sequences of every length.

In code, tokens are ``0 .. V-1`` and positions ``0 .. T-1``; sequences come as ``(N, T)`` tensors and
n-grams are counted inside each row, never across the end of one row into the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genlib.autoregressive.training import (
    perplexity,
    sample_sequences,
    sequence_log_likelihood,
    token_log_probs,
)
from genlib.validation import check_positive_int, check_probabilities, check_tensor

__all__ = [
    "ngram_counts",
    "add_k_conditionals",
    "bigram_probs",
    "NGramModel",
    "fit_ngram",
    "sample_ngram",
]

_MAX_TABLE = 2**26  # entries of the largest table we agree to build (V^n)


def _check_tokens(x: object, vocab_size: int) -> torch.Tensor:
    x = check_tensor(x, "x", ndim=2, floating=False)
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise ValueError(
            f"x must hold tokens in 0..{vocab_size - 1} (vocab_size={vocab_size}), got values from "
            f"{int(x.min())} to {int(x.max())}"
        )
    return x


def _powers(vocab_size: int, length: int, device: torch.device) -> torch.Tensor:
    """(V^{length-1}, ..., V, 1): the weights that turn ``length`` tokens into one flat index."""
    return vocab_size ** torch.arange(length - 1, -1, -1, device=device)


def ngram_counts(x: torch.Tensor, vocab_size: int, order: int) -> torch.Tensor:
    r"""How often each n-gram occurs in the rows of ``x``: :math:`N(x_{t-n+1}, \dots, x_t)`.

    Args:
        x: shape ``(N, T)``, ``torch.long`` tokens in ``0 .. V-1``. Each row is one sequence; an
            n-gram is counted only if it lies inside one row (``N * (T - n + 1)`` of them in all).
        vocab_size: :math:`V`.
        order: :math:`n \ge 1` (1: single tokens, 2: pairs, ...).

    Returns:
        ``torch.long`` counts of shape ``(V,) * n`` on the device of ``x``: entry
        ``[a, b, ..., z]`` counts the places where ``a, b, ..., z`` occur in this order.
    """
    vocab_size = check_positive_int(vocab_size, "vocab_size")
    order = check_positive_int(order, "order")
    x = _check_tokens(x, vocab_size)
    if vocab_size**order > _MAX_TABLE:
        raise ValueError(f"a table of V^n = {vocab_size}^{order} entries is too large; lower the order")
    if x.shape[1] < order:
        return torch.zeros((vocab_size,) * order, dtype=torch.long, device=x.device)
    windows = x.unfold(1, order, 1)  # (N, T - n + 1, n): every n-gram inside a row
    flat = windows @ _powers(vocab_size, order, x.device)  # (N, T - n + 1)
    return torch.bincount(flat.reshape(-1), minlength=vocab_size**order).reshape((vocab_size,) * order)


def add_k_conditionals(
    counts: torch.Tensor, k: float = 1.0, *, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    r"""Add-k smoothed conditionals along the last axis: :math:`(N(c, v) + k) / (N(c) + kV)`.

    Args:
        counts: shape ``(..., V)``, non-negative counts (integer or floating); the leading axes index
            the context :math:`c`.
        k: the pseudo-count :math:`k \ge 0` added to every entry. With ``k = 0`` a context that was
            never seen (all its counts zero) gets the uniform distribution :math:`1/V`.
        dtype: the floating dtype of the result.

    Returns:
        Shape ``(..., V)``, each row a probability vector, on the device of ``counts``.
    """
    counts = check_tensor(counts, "counts", finite=True)
    if counts.dim() == 0 or counts.shape[-1] == 0:
        raise ValueError(f"counts must have shape (..., V) with V >= 1, got {tuple(counts.shape)}")
    if bool((counts < 0).any()):
        raise ValueError("counts must be non-negative")
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k < 0:
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    smoothed = counts.to(dtype) + k
    totals = smoothed.sum(dim=-1, keepdim=True)
    vocab_size = counts.shape[-1]
    # A row of zeros (k = 0, context never seen) becomes uniform: the limit of add-k as k -> 0.
    return torch.where(totals > 0, smoothed / totals.clamp_min(torch.finfo(dtype).tiny), 1.0 / vocab_size)


def bigram_probs(
    x: torch.Tensor, vocab_size: int, k: float = 1.0, *, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    r"""The bigram table :math:`P(x_t = b \mid x_{t-1} = a) = \frac{N(a, b) + k}{N(a) + kV}`, ``(V, V)``.

    Args:
        x: shape ``(N, T)``, ``torch.long`` tokens; pairs are counted inside each row only.
        vocab_size: :math:`V`.
        k: add-k smoothing, :math:`k \ge 0` (an unseen row with ``k = 0`` is uniform).
        dtype: the floating dtype of the table.

    Returns:
        Shape ``(V, V)``: row ``a`` is the distribution of the token that follows ``a``.
    """
    return add_k_conditionals(ngram_counts(x, vocab_size, 2), k, dtype=dtype)


@dataclass(frozen=True)
class NGramModel:
    r"""An n-gram model: the tables of :math:`P(x_t \mid \text{the previous } \min(t, n-1) \text{ tokens})`.

    ``tables[j]`` has shape ``(V,) * (j + 1)``: entry ``[c_1, ..., c_j, v]`` is the probability of
    token ``v`` after the ``j`` tokens ``c_1 .. c_j``. Position ``t`` of a sequence (from 0) uses
    ``tables[min(t, n - 1)]``, so ``tables[0]`` (shape ``(V,)``) is :math:`P(x_1)` and ``tables[-1]``
    (shape ``(V,) * n``) is the n-gram table used from position :math:`n - 1` on.
    """

    tables: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.tables, tuple) or not self.tables:
            raise TypeError("tables must be a non-empty tuple of tensors")
        vocab_size = self.tables[0].shape[-1] if isinstance(self.tables[0], torch.Tensor) else None
        for j, table in enumerate(self.tables):
            check_probabilities(table, f"tables[{j}]")
            if tuple(table.shape) != (vocab_size,) * (j + 1):
                raise ValueError(
                    f"tables[{j}] must have shape {(vocab_size,) * (j + 1)}, got {tuple(table.shape)}"
                )
            if table.device != self.tables[0].device:
                raise ValueError(
                    f"tables[{j}] is on {table.device} but tables[0] is on {self.tables[0].device}"
                )

    @property
    def order(self) -> int:
        """The order :math:`n` (the model looks at the last :math:`n - 1` tokens)."""
        return len(self.tables)

    @property
    def vocab_size(self) -> int:
        """The vocabulary size :math:`V`."""
        return self.tables[0].shape[0]

    @property
    def device(self) -> torch.device:
        """Where the tables live."""
        return self.tables[0].device

    def conditional_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log P(x_t = v \mid x_{<t})` for every position and every token ``v``.

        Args:
            x: shape ``(B, T)``, ``torch.long`` tokens, on the model's device.

        Returns:
            Shape ``(B, T, V)`` in the tables' dtype; :math:`-\infty` where a table holds 0. Row
            ``t`` depends only on ``x[:, max(0, t - n + 1):t]``.
        """
        x = _check_tokens(x, self.vocab_size)
        n, vocab, (batch, length) = self.order, self.vocab_size, x.shape
        rows = []
        for t in range(min(n - 1, length)):  # the first positions: shorter contexts
            table = self.tables[t].log()
            rows.append(table[tuple(x[:, :t].T)] if t else table.expand(batch, vocab))  # (B, V)
        out = torch.stack(rows, dim=1) if rows else x.new_empty(batch, 0, vocab, dtype=self.tables[0].dtype)
        if length >= n:
            flat_table = self.tables[-1].log().reshape(-1, vocab)  # (V^{n-1}, V)
            if n == 1:
                rest = flat_table.expand(batch * (length - n + 1), vocab)
            else:
                contexts = x[:, :-1].unfold(1, n - 1, 1)  # (B, T - n + 1, n - 1): x_{t-n+1..t-1}
                rest = flat_table[contexts @ _powers(vocab, n - 1, x.device)]  # (B, T - n + 1, V)
            out = torch.cat([out, rest.reshape(batch, length - n + 1, vocab)], dim=1)
        return out

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        r"""The chain rule: :math:`\log P(x^i) = \sum_t \log P(x^i_t \mid x^i_{<t})`, shape ``(B,)``."""
        return sequence_log_likelihood(self.conditional_log_probs(x), x)

    def perplexity(self, x: torch.Tensor) -> torch.Tensor:
        """exp(mean NLL per token) on ``x`` (shape ``(B, T)``): a 0-d tensor."""
        return perplexity(token_log_probs(self.conditional_log_probs(x), x))

    def next_logits(self, prefix: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the next token after each row of ``prefix`` (shape ``(B, t)``): ``(B, V)``.

        The argument :func:`~genlib.autoregressive.training.sample_sequences` expects.
        """
        prefix = _check_tokens(prefix, self.vocab_size)
        t = prefix.shape[1]
        j = min(t, self.order - 1)  # how many tokens of context the model uses
        table = self.tables[j].log()
        if j == 0:
            return table.expand(prefix.shape[0], self.vocab_size)
        return table[tuple(prefix[:, t - j :].T)]


def fit_ngram(
    x: torch.Tensor, vocab_size: int, order: int, *, k: float = 1.0, dtype: torch.dtype = torch.float64
) -> NGramModel:
    r"""Fit an n-gram model by counting, with add-k smoothing, tables of every order up to :math:`n`.

    ``tables[j]`` is estimated from all the :math:`(j+1)`-grams inside the rows of ``x``, wherever they
    start. For data from a stationary source (like :mod:`genlib.data.text`) that is an estimate of
    the distribution of the first :math:`j + 1` tokens too, from many more counts than the starts of
    the rows alone would give.

    Args:
        x: shape ``(N, T)``, ``torch.long`` training sequences.
        vocab_size: :math:`V`.
        order: :math:`n \ge 1`.
        k: add-k smoothing, :math:`k \ge 0`.
        dtype: floating dtype of the tables.

    Returns:
        An :class:`NGramModel` on the device of ``x``.
    """
    order = check_positive_int(order, "order")
    tables = tuple(
        add_k_conditionals(ngram_counts(x, vocab_size, j + 1), k, dtype=dtype) for j in range(order)
    )
    return NGramModel(tables)


def sample_ngram(
    model: NGramModel,
    num_sequences: int,
    length: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw ``(num_sequences, length)`` ``torch.long`` tokens from an n-gram model, one position at a time.

    :func:`~genlib.autoregressive.training.sample_sequences` with the model's :meth:`NGramModel.next_logits`;
    ``generator`` must be on the model's device.
    """
    if not isinstance(model, NGramModel):
        raise TypeError(f"model must be an NGramModel, got {type(model).__name__}")
    start = torch.empty(
        check_positive_int(num_sequences, "num_sequences"), 0, dtype=torch.long, device=model.device
    )
    return sample_sequences(
        model.next_logits, num_sequences, length, temperature=temperature, generator=generator, prefix=start
    )
