r"""A character-level recurrent network: the whole context squeezed into a state vector.

A recurrent network reads the sequence one token at a time and keeps a state :math:`h_t \in \mathbb R^H`
that summarises everything read so far:

.. math::
    h_t = f_\theta(h_{t-1}, e(x_{t-1})), \qquad P(x_t \mid x_{<t}, \theta) = \mathrm{softmax}(W h_t + b),

with :math:`e` a learned embedding of tokens, :math:`f_\theta` a GRU (or LSTM) cell and :math:`h_0 = 0`.
The token read at step :math:`t` is the previous one, :math:`x_{t-1}`; at :math:`t = 0` it is a
begin-of-sequence token, so :math:`P(x_0)` is modelled too. Unlike an n-gram table, the context is not
cut off: :math:`h_t` depends on every earlier token, but only through :math:`H` numbers. Scoring a
sequence takes one pass over it; so does sampling, which carries :math:`h_t` from one step to the next
(:meth:`CharRNN.incremental`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genlib.autoregressive.training import extends_by_one
from genlib.validation import check_positive_int, check_tensor

__all__ = ["CharRNN"]


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return seed


class CharRNN(nn.Module):
    """Embedding, a GRU or LSTM, and a linear read-out to the logits of the next token.

    Args:
        vocab_size: :math:`V`; the begin-of-sequence token is index ``V`` of the embedding.
        embedding_dim: size of the token embedding.
        hidden_size: :math:`H`, the size of the state :math:`h_t`.
        num_layers: stacked recurrent layers.
        cell: ``"gru"`` or ``"lstm"``.
        seed: the parameters are initialised from ``torch.manual_seed(seed)`` inside
            ``torch.random.fork_rng``, so construction is reproducible and leaves the global random
            state as it was.

    Shapes: :meth:`forward` maps ``x`` ``(B, T)`` ``torch.long`` to logits ``(B, T, V)``; row ``t``
    depends on ``x[:, :t]`` only. Parameters are float32 on the CPU; move the model with ``.to(device)``.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embedding_dim: int = 16,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "gru",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        check_positive_int(embedding_dim, "embedding_dim")
        check_positive_int(hidden_size, "hidden_size")
        check_positive_int(num_layers, "num_layers")
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_check_seed(seed))
            self.embed = nn.Embedding(vocab_size + 1, embedding_dim)  # index V: begin of sequence
            recurrent = nn.GRU if cell == "gru" else nn.LSTM
            self.rnn = recurrent(embedding_dim, hidden_size, num_layers, batch_first=True)
            self.head = nn.Linear(hidden_size, vocab_size)

    @property
    def bos(self) -> int:
        """Index ``V``, that of the begin-of-sequence token (never produced, only read)."""
        return self.vocab_size

    def _check_tokens(self, x: torch.Tensor) -> torch.Tensor:
        x = check_tensor(x, "x", ndim=2, floating=False)
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise ValueError(
                f"x must hold tokens in 0..{self.vocab_size - 1}, got {int(x.min())}..{int(x.max())}"
            )
        return x

    def embed_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The inputs read to predict ``x``: ``BOS, x_0, ..., x_{T-2}``, embedded, shape ``(B, T, E)``."""
        x = self._check_tokens(x)
        bos = torch.full((x.shape[0], 1), self.bos, dtype=torch.long, device=x.device)
        return self.embed(torch.cat([bos, x[:, :-1]], dim=1))

    def logits_from_embedded(self, inputs: torch.Tensor) -> torch.Tensor:
        """Run the recurrence over embedded inputs ``(B, T, E)`` and read out logits ``(B, T, V)``."""
        states, _ = self.rnn(inputs)  # (B, T, H): h_t after reading inputs 0..t
        return self.head(states)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, V)`` of :math:`P(x_t \\mid x_{<t})` for every position, in one pass."""
        return self.logits_from_embedded(self.embed_inputs(x))

    def next_logits(self, prefix: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, V)`` of the token after ``prefix`` (``(B, t)``, ``t >= 0``), read from scratch."""
        prefix = self._check_tokens(prefix)
        bos = torch.full((prefix.shape[0], 1), self.bos, dtype=torch.long, device=prefix.device)
        states, _ = self.rnn(self.embed(torch.cat([bos, prefix], dim=1)))
        return self.head(states[:, -1])

    def incremental(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """A ``next_logits`` that carries the state :math:`h_t` between calls: one step per new token.

        Called with prefixes that grow by one token per call (as
        :func:`~genlib.autoregressive.training.sample_sequences` does), each call runs one step of the
        recurrence, so drawing :math:`T` tokens costs :math:`O(T)`. Any other prefix starts from scratch.
        """
        cache: dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None] = {
            "prefix": None,
            "state": None,
        }

        @torch.no_grad()
        def next_logits(prefix: torch.Tensor) -> torch.Tensor:
            prefix = self._check_tokens(prefix)
            grows_by_one = extends_by_one(prefix, cache["prefix"])
            if grows_by_one:
                new_tokens, state = prefix[:, -1:], cache["state"]
            else:
                bos = torch.full((prefix.shape[0], 1), self.bos, dtype=torch.long, device=prefix.device)
                new_tokens, state = torch.cat([bos, prefix], dim=1), None
            outputs, state = self.rnn(self.embed(new_tokens), state)
            cache["prefix"], cache["state"] = prefix, state
            return self.head(outputs[:, -1])

        return next_logits
