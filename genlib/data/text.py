r"""Text from a known source: a random sparse Markov chain of order :math:`m` over a small alphabet.

Each token depends on the :math:`m` tokens before it,
:math:`P(x_t \mid x_{<t}) = P(x_t \mid x_{t-m}, \dots, x_{t-1})`, and for each of the :math:`V^m`
contexts only a few next tokens (the *support*) are possible, with random probabilities. Because the
source is known exactly, so is the best any model can do on its text:

- the **entropy rate** :math:`h = \lim_T H(X_1, \dots, X_T)/T = \sum_c \pi(c)\, H(P(\cdot \mid c))`, with
  :math:`\pi` the stationary distribution of :math:`m` consecutive tokens; and
- the **block entropy** :math:`H(X_1, \dots, X_T) = H(X_1, \dots, X_m) + (T - m)\,h` of a window of
  :math:`T \ge m` tokens, the floor for the held-out negative log-likelihood of any model on such windows.

A model that looks at fewer than :math:`m` previous tokens (a bigram when :math:`m = 3`) cannot reach the
floor however much text it sees; one that looks far enough back can, given enough data. The source is an
:class:`~genlib.ngram.NGramModel` with :math:`n = m + 1`, whose first tables are the conditionals of the
stationary distribution, so every window it produces is a stretch of one stationary stream.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import torch

from genlib.divergences import entropy
from genlib.ngram import NGramModel, add_k_conditionals, sample_ngram
from genlib.validation import check_generator, check_positive_int, check_probabilities

__all__ = [
    "MarkovSource",
    "random_markov_source",
    "stationary_distribution",
    "entropy_rate",
    "block_entropy",
    "conditional_entropy",
    "sample_text",
    "forbidden_tokens",
    "decode",
]


@dataclass(frozen=True)
class MarkovSource:
    """A stationary Markov chain of order ``order`` over ``alphabet``.

    ``model``: the :class:`~genlib.ngram.NGramModel` of order ``order + 1`` that generates the text
    (``model.tables[-1]``, shape ``(V,) * (order + 1)``, is the transition table
    :math:`P(x_t \\mid x_{t-m..t-1})`). ``stationary``: shape ``(V,) * order``, the stationary distribution
    :math:`\\pi` of ``order`` consecutive tokens. ``alphabet``: one character per token, for printing.
    """

    model: NGramModel
    stationary: torch.Tensor
    alphabet: str

    @property
    def order(self) -> int:
        """The order :math:`m` (the number of previous tokens each token depends on)."""
        return self.model.order - 1

    @property
    def vocab_size(self) -> int:
        """The vocabulary size :math:`V`."""
        return self.model.vocab_size

    @property
    def transition(self) -> torch.Tensor:
        """The transition table, shape ``(V,) * (m + 1)``.

        Entry ``[c_1, ..., c_m, v]`` is the probability that token ``v`` follows ``c_1, ..., c_m``.
        """
        return self.model.tables[-1]


def stationary_distribution(
    transition: torch.Tensor, *, tol: float = 1e-13, max_iter: int = 100_000
) -> torch.Tensor:
    r"""A stationary distribution :math:`\pi` of ``m`` consecutive tokens under an order-``m`` transition.

    Iterates the lazy chain :math:`\pi \leftarrow \tfrac12\big(\pi + \pi P\big)` from the uniform
    distribution, where :math:`(\pi P)(c_2, \dots, c_m, v) = \sum_{c_1} \pi(c_1, \dots, c_m)\,
    P(v \mid c_1, \dots, c_m)`, until no entry moves by more than ``tol``. The lazy step converges for
    every finite chain, periodic ones included; for an irreducible chain the result is the unique
    stationary distribution.

    Args:
        transition: shape ``(V,) * (m + 1)``, ``m >= 1``, rows along the last axis summing to one.

    Returns:
        Shape ``(V,) * m``, summing to one, in the dtype of ``transition``.
    """
    transition = _check_transition(transition)
    m = transition.dim() - 1
    vocab = transition.shape[-1]
    pi = torch.full((vocab,) * m, 1.0 / vocab**m, dtype=transition.dtype, device=transition.device)
    for _ in range(max_iter):
        moved = (pi.unsqueeze(-1) * transition).sum(dim=0)  # (V,)*m: distribution of the next window
        new = 0.5 * (pi + moved)
        if (new - pi).abs().max().item() < tol:
            return new / new.sum()
        pi = new
    raise RuntimeError(f"the stationary distribution did not converge in {max_iter} iterations")


def _check_transition(transition: object) -> torch.Tensor:
    """Check a transition table of shape ``(V,) * (m + 1)`` with ``m >= 1``, probability rows."""
    transition = check_probabilities(transition, "transition")
    if transition.dim() < 2 or len(set(transition.shape)) != 1:
        raise ValueError(
            f"transition must have shape (V,) * (m + 1) with m >= 1, got {tuple(transition.shape)}"
        )
    return transition


def random_markov_source(
    vocab_size: int = 8,
    order: int = 3,
    *,
    support: int = 3,
    generator: torch.Generator | None = None,
    alphabet: str | None = None,
    dtype: torch.dtype = torch.float64,
) -> MarkovSource:
    r"""A random sparse Markov chain of order :math:`m`, with its stationary distribution.

    For each of the :math:`V^m` contexts, ``support`` distinct next tokens are chosen uniformly at
    random, and their probabilities are drawn from a flat Dirichlet (normalised exponentials); every
    other token has probability zero after that context.

    Args:
        vocab_size: :math:`V \ge 2`.
        order: :math:`m \ge 1`.
        support: how many tokens may follow each context, ``1 .. V``.
        generator: the source of randomness (on the CPU or the device wanted for the tables).
        alphabet: ``V`` distinct characters to print the tokens with (default: ``a, b, c, ...``).
        dtype: floating dtype of the tables.

    Returns:
        A :class:`MarkovSource` on the generator's device (the CPU without one).
    """
    vocab_size = check_positive_int(vocab_size, "vocab_size")
    order = check_positive_int(order, "order")
    support = check_positive_int(support, "support")
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    if support > vocab_size:
        raise ValueError(f"support must be in 1..vocab_size={vocab_size}, got {support}")
    if vocab_size ** (order + 1) > 2**24:
        raise ValueError(f"V^(m+1) = {vocab_size}^{order + 1} is too large a table")
    if alphabet is None:
        if vocab_size > 26:
            raise ValueError("give an alphabet for vocab_size > 26")
        alphabet = string.ascii_lowercase[:vocab_size]
    if not isinstance(alphabet, str) or len(alphabet) != vocab_size or len(set(alphabet)) != vocab_size:
        raise ValueError(f"alphabet must be a string of {vocab_size} distinct characters, got {alphabet!r}")
    device = generator.device if isinstance(generator, torch.Generator) else torch.device("cpu")
    generator = check_generator(generator, device)
    contexts = vocab_size**order
    ranks = torch.rand(contexts, vocab_size, generator=generator, device=device).argsort(dim=1).argsort(dim=1)
    allowed = ranks < support  # (V^m, V): a random subset of `support` tokens per context
    u = torch.rand(contexts, vocab_size, generator=generator, dtype=dtype, device=device)
    weights = (-torch.log1p(-u)).clamp_min(torch.finfo(dtype).tiny) * allowed  # Exponential(1) on the support
    transition = (weights / weights.sum(dim=1, keepdim=True)).reshape((vocab_size,) * (order + 1))
    pi = stationary_distribution(transition)
    # The first m tables: conditionals of the stationary distribution of the first j + 1 tokens.
    marginals = [pi.sum(dim=tuple(range(j + 1, order))) if j + 1 < order else pi for j in range(order)]
    lower = [add_k_conditionals(marginal, 0.0, dtype=dtype) for marginal in marginals]
    return MarkovSource(NGramModel((*lower, transition)), pi, alphabet)


def entropy_rate(source: MarkovSource) -> torch.Tensor:
    r"""The exact entropy rate :math:`h = \sum_c \pi(c)\, H(P(\cdot \mid c))`, in nats per token (0-d tensor).

    For a stationary chain of order :math:`m`, :math:`H(X_t \mid X_{<t}) = H(X_t \mid X_{t-m..t-1}) = h`
    for every :math:`t > m`: no model, however much context it reads, predicts a token better on average.
    """
    _check_source(source)
    rows = source.transition.reshape(-1, source.vocab_size)  # (V^m, V)
    return (source.stationary.reshape(-1) * entropy(rows)).sum()


def block_entropy(source: MarkovSource, length: int) -> torch.Tensor:
    r"""The exact entropy :math:`H(X_1, \dots, X_T)` of a window of ``length`` = :math:`T` tokens (0-d).

    :math:`H(X_1, \dots, X_{\min(T, m)})` from the stationary distribution, plus :math:`(T - m)\,h` for
    :math:`T > m`. Divided by :math:`T` it is the least mean NLL per token that any model can have on
    windows of :math:`T` tokens of this source: the floor of the held-out loss.
    """
    _check_source(source)
    length = check_positive_int(length, "length")
    m = source.order
    first = min(length, m)
    head = source.stationary.sum(dim=tuple(range(first, m))) if first < m else source.stationary
    return entropy(head.reshape(-1)) + max(length - m, 0) * entropy_rate(source)


def conditional_entropy(source: MarkovSource, context: int) -> torch.Tensor:
    r"""The exact :math:`H(X_t \mid X_{t-j}, \dots, X_{t-1})` of the stationary text, :math:`j` = ``context``.

    What a token is still worth, in nats, to a reader who knows the :math:`j` tokens before it: the
    held-out NLL per token that an n-gram model with :math:`n = j + 1` reaches with unlimited training
    text (it then estimates exactly these conditionals). :math:`j = 0` gives the entropy of a single
    token; :math:`j \ge m` gives the entropy rate :math:`h`; in between it never increases with :math:`j`.
    Computed as :math:`H(X_{t-j}, \dots, X_t) - H(X_{t-j}, \dots, X_{t-1})` from the stationary distribution
    of :math:`m + 1` consecutive tokens, :math:`\pi(c)\,P(v \mid c)`.

    Returns:
        A 0-d tensor (nats).
    """
    _check_source(source)
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ValueError(f"context must be an int >= 0, got {context!r}")
    m = source.order
    if context >= m:
        return entropy_rate(source)
    window = source.stationary.unsqueeze(-1) * source.transition  # (V,)*(m+1): m + 1 consecutive tokens
    last = window.sum(dim=tuple(range(m - context)))  # (V,)*(j+1): the last j + 1 of them
    before = last.sum(dim=-1)  # (V,)*j
    return entropy(last.reshape(-1)) - (entropy(before.reshape(-1)) if context else 0.0)


def sample_text(
    source: MarkovSource, num_sequences: int, length: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(num_sequences, length)`` ``torch.long`` windows of the stationary stream, drawn independently.

    The first ``m`` tokens of each window are drawn from the stationary distribution (by the chain rule,
    through the source's lower tables), the rest from the transition table: ancestral sampling with
    :func:`genlib.ngram.sample_ngram`, ``generator`` on the source's device.
    """
    _check_source(source)
    return sample_ngram(source.model, num_sequences, length, generator=generator)


def forbidden_tokens(source: MarkovSource, x: torch.Tensor) -> torch.Tensor:
    """Where a sequence does what the source cannot: ``True`` where :math:`P(x_t \\mid x_{<t}) = 0`.

    Args:
        x: shape ``(B, T)``, ``torch.long`` tokens, on the source's device.

    Returns:
        Shape ``(B, T)``, ``torch.bool``. Text from the source is ``False`` everywhere; a model's samples
        show how often it leaves the source's support.
    """
    _check_source(source)
    log_probs = source.model.conditional_log_probs(x).gather(-1, x.unsqueeze(-1)).squeeze(-1)
    return log_probs == -torch.inf


def decode(x: torch.Tensor, alphabet: str) -> list[str]:
    """Rows of tokens (shape ``(B, T)`` or ``(T,)``) as strings, token ``v`` printed as ``alphabet[v]``."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (1, 2) or x.is_floating_point():
        raise TypeError("x must be an integer tensor of shape (B, T) or (T,)")
    rows = x.reshape(-1, x.shape[-1]).tolist()
    if any(v < 0 or v >= len(alphabet) for row in rows for v in row):
        raise ValueError(f"x holds tokens outside 0..{len(alphabet) - 1}")
    return ["".join(alphabet[v] for v in row) for row in rows]


def _check_source(source: object) -> None:
    if not isinstance(source, MarkovSource):
        raise TypeError(f"source must be a MarkovSource, got {type(source).__name__}")
