"""genlib.data.text and genlib.data.images: the Markov source against exhaustive enumeration (its
stationary distribution, block entropy and entropy rate), a Monte Carlo estimate, chi-square tests of
its text; the binarized digits against scikit-learn's own arrays."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch

from genlib.data.images import binarized_digits, train_test_split
from genlib.data.text import (
    block_entropy,
    conditional_entropy,
    decode,
    entropy_rate,
    forbidden_tokens,
    random_markov_source,
    sample_text,
    stationary_distribution,
)
from genlib.device import make_generator


def small_source(seed: int = 0, device: str = "cpu", vocab: int = 3, order: int = 2, support: int = 2):
    return random_markov_source(vocab, order, support=support, generator=make_generator(seed, device))


# --------------------------------------------------------------------------- the source


def test_each_context_has_exactly_support_next_tokens(device):
    source = random_markov_source(8, 3, support=3, generator=make_generator(0, device))
    rows = source.transition.reshape(-1, 8)
    assert rows.shape == (512, 8) and rows.device.type == device
    assert ((rows > 0).sum(dim=1) == 3).all()
    torch.testing.assert_close(rows.sum(dim=1), torch.ones(512, dtype=torch.float64, device=device))
    assert source.alphabet == "abcdefgh" and source.order == 3 and source.vocab_size == 8
    # The same seed gives the same source; another seed another one.
    again = random_markov_source(8, 3, support=3, generator=make_generator(0, device))
    other = random_markov_source(8, 3, support=3, generator=make_generator(1, device))
    assert torch.equal(source.transition, again.transition)
    assert not torch.equal(source.transition, other.transition)


@pytest.mark.parametrize(("vocab", "order", "support"), [(3, 1, 2), (3, 2, 2), (4, 2, 3), (2, 3, 1)])
def test_stationary_distribution_is_stationary(vocab, order, support):
    source = random_markov_source(vocab, order, support=support, generator=make_generator(vocab + order))
    pi, transition = source.stationary, source.transition
    assert pi.shape == (vocab,) * order
    assert math.isclose(pi.sum().item(), 1.0, rel_tol=1e-12)
    # pi P = pi, written out with numpy over every window (c_1..c_m) -> (c_2..c_m, v).
    pi_np, p_np = pi.numpy(), transition.numpy()
    moved = np.zeros_like(pi_np)
    for window in itertools.product(range(vocab), repeat=order):
        for v in range(vocab):
            moved[(*window[1:], v)] += pi_np[window] * p_np[(*window, v)]
    np.testing.assert_allclose(moved, pi_np, atol=1e-11)


def test_stationary_distribution_of_a_periodic_chain():
    """The lazy iteration converges where the plain power iteration would oscillate: 0 -> 1 -> 0."""
    flip = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(stationary_distribution(flip), torch.tensor([0.5, 0.5], dtype=torch.float64))


@pytest.mark.parametrize("length", [1, 2, 3, 5])
def test_block_entropy_by_enumeration(length):
    """H(X_1..X_T) = -sum over all V^T windows of P log P, with P from the source's own chain rule."""
    source = small_source(seed=4)
    every = torch.tensor(list(itertools.product(range(3), repeat=length)))
    log_p = source.model.log_likelihood(every)
    p = log_p.exp()
    assert math.isclose(p.sum().item(), 1.0, rel_tol=1e-12)
    enumerated = -torch.xlogy(p, p).sum().item()
    assert math.isclose(block_entropy(source, length).item(), enumerated, rel_tol=1e-10)


def test_entropy_rate_is_the_growth_of_block_entropy():
    source = small_source(seed=5)
    h = entropy_rate(source).item()
    for t in (3, 4, 6):
        assert math.isclose(
            (block_entropy(source, t) - block_entropy(source, t - 1)).item(), h, rel_tol=1e-10
        )
    # Between 0 (deterministic) and log(support).
    assert 0 < h < math.log(2)


def test_conditional_entropy_by_enumeration_and_limits():
    """H(X_t | j previous) = H(X_1..X_{j+1}) - H(X_1..X_j) by stationarity, from enumerated blocks; it
    falls with j down to the entropy rate, and is what a fitted n-gram's held-out NLL approaches."""
    source = random_markov_source(3, 3, support=2, generator=make_generator(6))
    values = [conditional_entropy(source, j).item() for j in range(6)]
    for j in range(1, 4):
        blocks = []
        for length in (j, j + 1):
            every = torch.tensor(list(itertools.product(range(3), repeat=length)))
            p = source.model.log_likelihood(every).exp()
            blocks.append(-torch.xlogy(p, p).sum().item())
        assert math.isclose(values[j], blocks[1] - blocks[0], rel_tol=1e-9, abs_tol=1e-12)
    p1 = source.stationary.sum(dim=(1, 2))
    assert math.isclose(values[0], -torch.xlogy(p1, p1).sum().item(), rel_tol=1e-12)
    assert all(a >= b - 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert values[3] == values[5] == entropy_rate(source).item()
    # A bigram fitted on plenty of text scores close to H(X_t | X_{t-1}) from position 1 on.
    from genlib.ngram import fit_ngram

    train = sample_text(source, 2000, 50, generator=make_generator(7))
    test = sample_text(source, 2000, 50, generator=make_generator(8))
    model = fit_ngram(train, 3, 2, k=0.0)
    log_probs = model.conditional_log_probs(test).gather(-1, test.unsqueeze(-1)).squeeze(-1)[:, 1:]
    terms = -log_probs.reshape(-1)
    assert abs(terms.mean().item() - values[1]) < 4 * terms.std().item() / math.sqrt(terms.numel()) + 0.002


def test_entropy_rate_by_monte_carlo(device):
    """-1/T log P(x) of one long stream converges to h (Shannon-McMillan-Breiman); here within 4 SE."""
    source = random_markov_source(6, 2, support=3, generator=make_generator(1, device))
    x = sample_text(source, 200, 200, generator=make_generator(2, device))
    log_probs = source.model.conditional_log_probs(x).gather(-1, x.unsqueeze(-1)).squeeze(-1)[:, 2:]
    terms = -log_probs.reshape(-1).cpu().double()
    estimate, se = terms.mean().item(), terms.std().item() / math.sqrt(terms.numel())
    h = entropy_rate(source).item()
    assert abs(estimate - h) < 4 * se
    assert abs(estimate - (h + 0.05)) > 4 * se  # power: a rate 0.05 nats off would be noticed


def test_text_follows_the_source(device):
    source = random_markov_source(4, 2, support=3, generator=make_generator(8, device))
    x = sample_text(source, 3000, 10, generator=make_generator(9, device))
    assert x.shape == (3000, 10) and x.dtype == torch.long and x.device.type == device
    assert not forbidden_tokens(source, x).any()
    # The first two tokens follow the stationary distribution.
    pi = source.stationary.reshape(-1).cpu().numpy()
    firsts = (x[:, 0] * 4 + x[:, 1]).cpu().numpy()
    counts = np.bincount(firsts, minlength=16)
    support = pi > 0
    assert counts[~support].sum() == 0
    assert scipy.stats.chisquare(counts[support], counts.sum() * pi[support]).pvalue > 1e-3
    # Every later token follows the transition row of its context.
    rows = source.transition.reshape(16, 4).cpu().numpy()
    windows = x.unfold(1, 3, 1).reshape(-1, 3).cpu().numpy()
    context = windows[:, 0] * 4 + windows[:, 1]
    for c in range(16):
        following = windows[context == c, 2]
        if following.size < 200:
            continue
        counts = np.bincount(following, minlength=4)
        allowed = rows[c] > 0
        assert counts[~allowed].sum() == 0
        assert scipy.stats.chisquare(counts[allowed], following.size * rows[c][allowed]).pvalue > 1e-4


def test_forbidden_tokens_marks_what_the_source_cannot_do():
    source = small_source(seed=3)
    x = sample_text(source, 5, 8, generator=make_generator(0))
    context = tuple(x[0, 3:5].tolist())
    impossible = int((source.transition[context] == 0).nonzero()[0])
    x[0, 5] = impossible
    marks = forbidden_tokens(source, x)
    assert marks[0, 5] and marks.sum() >= 1 and not marks[1:].any()


def test_decode_and_bad_arguments():
    assert decode(torch.tensor([[0, 2, 1], [1, 1, 0]]), "xyz") == ["xzy", "yyx"]
    assert decode(torch.tensor([2, 0]), "ab!") == ["!a"]
    with pytest.raises(ValueError, match="outside"):
        decode(torch.tensor([3]), "abc")
    with pytest.raises(ValueError, match="support must be in"):
        random_markov_source(3, 2, support=4)
    with pytest.raises(ValueError, match="distinct characters"):
        random_markov_source(3, 1, alphabet="aab")
    with pytest.raises(ValueError, match="length must be >= 1"):
        block_entropy(small_source(), 0)


# --------------------------------------------------------------------------- images


def test_binarized_digits_match_scikit_learn():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = binarized_digits()
    assert data.images.shape == (1797, 1, 8, 8) and data.images.dtype == torch.float32
    assert data.labels.shape == (1797,) and data.labels.dtype == torch.long
    np.testing.assert_array_equal(data.images[:, 0].numpy(), (bunch.images >= 8).astype(np.float32))
    np.testing.assert_array_equal(data.labels.numpy(), bunch.target)
    # A higher threshold switches pixels off, never on.
    strict = binarized_digits(12).images
    assert (strict <= data.images).all() and strict.sum() < data.images.sum()


def test_binarized_digits_subset_and_errors():
    zeros_ones = binarized_digits(digits=(1, 0))
    assert set(zeros_ones.labels.tolist()) == {0, 1}
    assert zeros_ones.images.shape[0] == int((binarized_digits().labels <= 1).sum())
    with pytest.raises(ValueError, match="threshold"):
        binarized_digits(0)
    with pytest.raises(ValueError, match="digits"):
        binarized_digits(digits=(10,))


def test_train_test_split():
    x = torch.arange(50).reshape(25, 2)
    train, test = train_test_split(x, 0.2, generator=make_generator(0))
    assert train.shape == (20, 2) and test.shape == (5, 2)
    together = torch.cat([train, test])[:, 0].sort().values
    assert torch.equal(together, x[:, 0])  # a partition: nothing lost, nothing repeated
    again = train_test_split(x, 0.2, generator=make_generator(0))
    assert torch.equal(again[1], test)
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(x, 1.0)
