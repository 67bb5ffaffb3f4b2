"""genlib.ngram against independent references: counting with Python's Counter, the add-k formula in
numpy, exhaustive enumeration of every sequence (the chain rule gives a normalised distribution),
and chi-square tests of the sampler with a power check."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import scipy.stats
import torch

from genlib.autoregressive.training import perplexity, token_log_probs
from genlib.ngram import NGramModel, add_k_conditionals, bigram_probs, fit_ngram, ngram_counts, sample_ngram


def random_tokens(seed: int, shape: tuple[int, int], vocab_size: int, device: str = "cpu") -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.integers(0, vocab_size, size=shape), device=device)


def python_counts(x: torch.Tensor, order: int) -> Counter:
    counts: Counter = Counter()
    for row in x.tolist():
        for t in range(len(row) - order + 1):
            counts[tuple(row[t : t + order])] += 1
    return counts


# --------------------------------------------------------------------------- counting and smoothing


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ngram_counts_equal_python_counter(order, device):
    vocab = 4
    x = random_tokens(order, (7, 13), vocab, device)
    counts = ngram_counts(x, vocab, order)
    assert counts.shape == (vocab,) * order and counts.dtype == torch.long and counts.device == x.device
    reference = python_counts(x.cpu(), order)
    for gram in itertools.product(range(vocab), repeat=order):
        assert counts[gram].item() == reference.get(gram, 0), gram
    assert counts.sum().item() == 7 * (13 - order + 1)  # n-grams never cross from one row to the next


def test_ngram_counts_do_not_cross_rows():
    x = torch.tensor([[0, 1], [2, 3]])
    counts = ngram_counts(x, 4, 2)
    assert counts[0, 1] == 1 and counts[2, 3] == 1 and counts[1, 2] == 0
    assert counts.sum() == 2
    # Rows shorter than the order hold no n-gram at all.
    assert ngram_counts(x, 4, 3).sum() == 0


@pytest.mark.parametrize("k", [0.0, 0.5, 1.0, 3.0])
def test_add_k_formula_and_rows_sum_to_one(k, device):
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 5, size=(6, 5))
    counts[2] = 0  # a context never seen
    got = add_k_conditionals(torch.tensor(counts, device=device), k)
    assert got.dtype == torch.float64 and got.device.type == device
    totals = counts.sum(axis=1, keepdims=True) + k * 5
    expected = (counts + k) / np.where(totals > 0, totals, 1)
    if k == 0:
        expected[2] = 1 / 5  # k = 0: the unseen row is uniform
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-12)
    torch.testing.assert_close(got.sum(-1), torch.ones(6, dtype=torch.float64, device=device))


def test_add_k_limits():
    counts = torch.tensor([[8, 2, 0, 0]])
    mle = add_k_conditionals(counts, 0.0)
    torch.testing.assert_close(mle, torch.tensor([[0.8, 0.2, 0.0, 0.0]], dtype=torch.float64))
    # A huge k drowns the counts: the rows tend to uniform.
    flat = add_k_conditionals(counts, 1e9)
    torch.testing.assert_close(flat, torch.full((1, 4), 0.25, dtype=torch.float64), rtol=0, atol=1e-8)


def test_add_k_rejects_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        add_k_conditionals(torch.ones(2, 2), -1.0)
    with pytest.raises(ValueError, match="non-negative"):
        add_k_conditionals(torch.tensor([[1.0, -1.0]]), 1.0)
    with pytest.raises(TypeError, match="floating dtype"):
        add_k_conditionals(torch.ones(2, 2), 1.0, dtype=torch.long)


@pytest.mark.parametrize("k", [0.0, 1.0])
def test_bigram_probs_by_hand(k, device):
    vocab = 5
    x = random_tokens(11, (20, 9), vocab, device)
    x[:, :] = torch.where(x == 4, 3, x)  # token 4 never occurs: its row is unseen
    got = bigram_probs(x, vocab, k)
    assert got.shape == (vocab, vocab) and got.dtype == torch.float64
    pairs = python_counts(x.cpu(), 2)
    for a in range(vocab):
        total = sum(pairs.get((a, b), 0) for b in range(vocab))
        for b in range(vocab):
            expected = (pairs.get((a, b), 0) + k) / (total + k * vocab) if total + k > 0 else 1 / vocab
            assert math.isclose(got[a, b].item(), expected, rel_tol=1e-12), (a, b)
    torch.testing.assert_close(got.sum(-1), torch.ones(vocab, dtype=torch.float64, device=device))


def test_counting_rejects_bad_tokens():
    with pytest.raises(ValueError, match="tokens in 0..2"):
        ngram_counts(torch.tensor([[0, 3]]), 3, 2)
    with pytest.raises(ValueError, match="2 dimension"):
        ngram_counts(torch.tensor([0, 1]), 3, 2)
    with pytest.raises(TypeError, match="integer dtype"):
        bigram_probs(torch.tensor([[0.0, 1.0]]), 3)


# --------------------------------------------------------------------------- the chain rule


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_log_likelihood_is_sum_of_conditionals(order, device):
    vocab = 4
    train = random_tokens(20 + order, (30, 12), vocab, device)
    model = fit_ngram(train, vocab, order, k=0.5)
    x = random_tokens(5, (6, 9), vocab, device)
    by_hand = torch.zeros(6, dtype=torch.float64)
    for b in range(6):
        for t in range(9):
            context = tuple(x[b, max(0, t - order + 1) : t].tolist())
            table = model.tables[len(context)]
            by_hand[b] += math.log(table[(*context, x[b, t].item())].item())
    torch.testing.assert_close(model.log_likelihood(x).cpu(), by_hand, rtol=1e-12, atol=1e-12)
    # next_logits gives the same conditionals, prefix by prefix.
    rows = model.conditional_log_probs(x)
    for t in range(9):
        torch.testing.assert_close(model.next_logits(x[:, :t]), rows[:, t])


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("length", [1, 2, 4])
def test_chain_rule_gives_a_normalised_distribution(order, length):
    """Summed over all V^T sequences, exp(log-likelihood) is exactly one."""
    vocab = 3
    model = fit_ngram(random_tokens(order, (10, 8), vocab), vocab, order, k=0.3)
    every = torch.tensor(list(itertools.product(range(vocab), repeat=length)))  # (V^T, T)
    total = model.log_likelihood(every).exp().sum().item()
    assert math.isclose(total, 1.0, rel_tol=1e-12)


def test_perplexity_is_exp_mean_nll(device):
    vocab = 6
    model = fit_ngram(random_tokens(1, (40, 20), vocab, device), vocab, 2, k=1.0)
    x = random_tokens(2, (8, 15), vocab, device)
    mean_nll = -model.log_likelihood(x).sum().item() / x.numel()
    assert math.isclose(model.perplexity(x).item(), math.exp(mean_nll), rel_tol=1e-12)
    assert math.isclose(
        perplexity(token_log_probs(model.conditional_log_probs(x), x)).item(), math.exp(mean_nll)
    )
    # The uniform model hesitates between all V tokens: perplexity V.
    uniform = NGramModel((torch.full((vocab,), 1 / vocab, dtype=torch.float64),))
    assert math.isclose(uniform.perplexity(x.cpu()).item(), vocab, rel_tol=1e-12)


def test_zero_probability_gives_minus_infinity_not_nan():
    model = fit_ngram(torch.tensor([[0, 1, 0, 1]]), 3, 2, k=0.0)  # 1 never follows 1
    ll = model.log_likelihood(torch.tensor([[0, 1, 1], [0, 1, 0]]))
    assert ll[0] == -math.inf and math.isfinite(ll[1].item())
    assert model.perplexity(torch.tensor([[0, 1, 1]])).item() == math.inf


def test_ngram_model_rejects_bad_tables():
    with pytest.raises(ValueError, match="sum to 1"):
        NGramModel((torch.tensor([0.5, 0.6]),))
    with pytest.raises(ValueError, match="tables\\[1\\] must have shape"):
        NGramModel((torch.tensor([0.5, 0.5]), torch.full((3, 2), 0.5)))


# --------------------------------------------------------------------------- sampling


def chisquare_p(samples: np.ndarray, probs: np.ndarray) -> float:
    counts = np.bincount(samples, minlength=probs.shape[0])
    support = probs > 0
    assert counts[~support].sum() == 0, "a zero-probability token was drawn"
    return scipy.stats.chisquare(counts[support], samples.shape[0] * probs[support]).pvalue


def shifted(p: np.ndarray, amount: float) -> np.ndarray:
    """``amount`` of mass moved from the likeliest to the least likely token in the support."""
    q = p.copy()
    support = np.flatnonzero(q > 0)
    order = support[np.argsort(q[support], kind="stable")]
    hi, lo = order[-1], order[0]  # different tokens even when all are tied
    q[hi] -= amount
    q[lo] += amount
    return q


def test_bigram_samples_pass_chi_square(device, gen):
    vocab = 5
    probs = bigram_probs(random_tokens(7, (50, 30), vocab, device), vocab, k=0.5)
    probs[2] = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0], dtype=torch.float64)  # a row with zeros
    first = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25], dtype=torch.float64, device=device)
    model = NGramModel((first, probs))
    x = sample_ngram(model, 4000, 12, generator=gen(0)).cpu().numpy()
    assert x.shape == (4000, 12)
    assert chisquare_p(x[:, 0], first.cpu().numpy()) > 1e-3
    table = probs.cpu().numpy()
    previous, following = x[:, :-1].reshape(-1), x[:, 1:].reshape(-1)
    for a in range(vocab):
        after_a = following[previous == a]
        assert chisquare_p(after_a, table[a]) > 1e-3, f"row {a}"
        # Power: the same draws reject the row with 0.08 of its mass moved between two tokens.
        assert chisquare_p(after_a, shifted(table[a], 0.08)) < 1e-6, f"row {a} not told apart"


def test_sampling_temperature(gen, device):
    first = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64, device=device)
    model = NGramModel((first,))
    cold = sample_ngram(model, 20000, 1, temperature=0.5, generator=gen(1)).cpu().numpy()[:, 0]
    sharpened = first.cpu().numpy() ** 2 / (first.cpu().numpy() ** 2).sum()  # p^(1/tau)
    assert chisquare_p(cold, sharpened) > 1e-3
    assert chisquare_p(cold, first.cpu().numpy()) < 1e-6
    greedy = sample_ngram(model, 5, 3, temperature=0, generator=gen(1))
    assert (greedy == 3).all()


def test_sampling_is_reproducible_and_on_the_model_device(gen, device):
    model = fit_ngram(random_tokens(0, (20, 10), 5, device), 5, 3)
    a = sample_ngram(model, 7, 11, generator=gen(3))
    b = sample_ngram(model, 7, 11, generator=gen(3))
    c = sample_ngram(model, 7, 11, generator=gen(4))
    assert a.device.type == device and a.dtype == torch.long and a.shape == (7, 11)
    assert torch.equal(a, b) and not torch.equal(a, c)
