r"""Autoregressive models: the chain rule :math:`P(x) = \prod_t P(x_t \mid x_{<t})` with a network per factor.

- :mod:`genlib.autoregressive.training` -- the chain-rule log-likelihood, teacher forcing, scheduled
  sampling and its schedules, the training loop, and the sampling loop with a temperature.
- :mod:`genlib.autoregressive.rnn` -- a character-level recurrent network (GRU or LSTM).
- :mod:`genlib.autoregressive.transformer` -- causal self-attention written out with its mask, and a
  small causal transformer (with a key-value cache for sampling).
- :mod:`genlib.autoregressive.pixelcnn` -- masked 2-D convolutions of types A and B, and a small
  PixelCNN over binary images.

Every sequence model here reads token sequences ``x`` of shape ``(B, T)`` (``torch.long``, values in
``0 .. V-1``) and returns logits of shape ``(B, T, V)`` whose row ``t`` parametrises
:math:`P(x_t \mid x_0, \dots, x_{t-1})`: position ``t`` sees only the tokens before it. A begin-of-
sequence token (index ``V``, never produced) stands in for the empty context of the first token, so
the product over all ``T`` rows is the probability of the whole sequence.
"""
