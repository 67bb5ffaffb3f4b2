r"""RBM block Gibbs sampling: genlib against scikit-learn's ``BernoulliRBM.gibbs``, same weights.

One step draws :math:`h \sim P(h \mid v)`, then :math:`v' \sim P(v \mid h)`, for every chain. Both
sides get the same RBM (64 visible x 64 hidden units, random weights) and the same 1,000 starting
states, and each timed call runs ``STEPS`` steps:

- genlib: ``rbm_gibbs_step(v, weight, visible_bias, hidden_bias, generator=g, num_steps=STEPS)``,
  one call (the inputs are checked once, the buffers reused); the case ``rbm_gibbs_single`` makes
  ``STEPS`` separate one-step calls instead;
- scikit-learn: ``STEPS`` calls of ``rbm.gibbs(v)`` (its public one-step call, which runs
  ``_sample_hiddens`` then ``_sample_visibles`` with its ``random_state_``; there is no multi-step
  call), on a ``BernoulliRBM(n_components=64)`` whose ``components_`` (``weight.T``),
  ``intercept_hidden_`` and ``intercept_visible_`` are set to genlib's parameters, in the same dtype.

The two draw from different random number generators, so they are compared by statistics: after
``AGREEMENT_STEPS`` steps from the same start, the mean of every visible unit over the chains.

At this size a step is bound by random number generation, not by the two ``(1000, 64) x (64, 64)``
products: 128,000 uniforms per step, which torch's CPU generator (mt19937) draws one at a time.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neural_network import BernoulliRBM

from benchmarks.harness import Case, Prepared, markdown_table, run_case
from genlib.device import make_generator
from genlib.mcmc import rbm_gibbs_step

NUM_VISIBLE = 64
NUM_HIDDEN = 64
NUM_CHAINS = 1000
STEPS = 100
AGREEMENT_STEPS = 200
TITLE = "RBM block Gibbs step, 64 visible x 64 hidden, 1,000 chains"
ANCHOR = "sklearn BernoulliRBM.gibbs"


def rbm_problem(dtype: torch.dtype, device: str = "cpu", seed: int = 0):
    r"""Random RBM parameters and starting states.

    Returns:
        ``(weight, visible_bias, hidden_bias, v0)`` of shapes ``(D, H)``, ``(D,)``, ``(H,)`` and
        ``(C, D)`` (0/1), with ``D = H = 64`` and ``C = 1000``, in ``dtype`` on ``device``. Weights
        :math:`\mathcal N(0, 0.2^2)` and biases :math:`\mathcal N(0, 0.5^2)`: pre-activations of
        order 1, so that the units neither freeze nor flip at random.
    """
    g = make_generator(seed)
    weight = 0.2 * torch.randn(NUM_VISIBLE, NUM_HIDDEN, generator=g, dtype=torch.float64)
    visible_bias = 0.5 * torch.randn(NUM_VISIBLE, generator=g, dtype=torch.float64)
    hidden_bias = 0.5 * torch.randn(NUM_HIDDEN, generator=g, dtype=torch.float64)
    v0 = (torch.rand(NUM_CHAINS, NUM_VISIBLE, generator=g, dtype=torch.float64) < 0.5).double()
    return tuple(t.to(dtype=dtype, device=device) for t in (weight, visible_bias, hidden_bias, v0))


def sklearn_rbm(weight: torch.Tensor, visible_bias: torch.Tensor, hidden_bias: torch.Tensor) -> BernoulliRBM:
    """A ``BernoulliRBM`` with genlib's parameters (``components_`` is ``(H, D)``), as if fitted."""
    rbm = BernoulliRBM(n_components=weight.shape[1], random_state=0)
    rbm.components_ = np.ascontiguousarray(weight.T.cpu().numpy())
    rbm.intercept_hidden_ = hidden_bias.cpu().numpy().copy()
    rbm.intercept_visible_ = visible_bias.cpu().numpy().copy()
    return rbm


def _agreement(params, v0, rbm: BernoulliRBM, device: str) -> dict:
    r"""Per-unit means over the chains after ``AGREEMENT_STEPS`` steps, genlib against scikit-learn.

    The chains are independent, so each mean has standard error :math:`\sqrt{m(1 - m)/C}`; the
    largest of the 64 standardised differences should be below about 3.5 if both samplers target the
    same distribution.
    """
    ours, _ = rbm_gibbs_step(v0, *params, generator=make_generator(1, device), num_steps=AGREEMENT_STEPS)
    theirs = v0.cpu().numpy()
    for _ in range(AGREEMENT_STEPS):
        theirs = rbm.gibbs(theirs)
    m_ours = ours.double().mean(dim=0).cpu().numpy()
    m_theirs = theirs.astype(np.float64).mean(axis=0)
    se = np.sqrt((m_ours * (1 - m_ours) + m_theirs * (1 - m_theirs)) / NUM_CHAINS)
    diff = np.abs(m_ours - m_theirs)
    return {
        "steps": AGREEMENT_STEPS,
        "mean_visible_activation_genlib": float(m_ours.mean()),
        "mean_visible_activation_sklearn": float(m_theirs.mean()),
        "max_abs_diff_unit_means": float(diff.max()),
        "max_z_unit_means": float((diff / np.maximum(se, 1e-12)).max()),
    }


def _prepare(dtype: torch.dtype, device: str, num_steps: int) -> Prepared:
    """The two timed callables: ``STEPS`` Gibbs steps each, as ``STEPS // num_steps`` genlib calls."""
    weight, visible_bias, hidden_bias, v0 = rbm_problem(dtype, device)
    params = (weight, visible_bias, hidden_bias)
    rbm = sklearn_rbm(*params)
    v0_np = v0.cpu().numpy()
    agreement = _agreement(params, v0, rbm, device)
    agreement |= {
        "dtype": str(dtype).removeprefix("torch."),
        "steps_per_timed_call": STEPS,
        "genlib_steps_per_call": num_steps,
    }
    generator = make_generator(2, device)

    def genlib_fn() -> torch.Tensor:
        v = v0
        for _ in range(STEPS // num_steps):
            v, _ = rbm_gibbs_step(v, *params, generator=generator, num_steps=num_steps)
        return v

    def anchor_fn() -> np.ndarray:
        v = v0_np
        for _ in range(STEPS):
            v = rbm.gibbs(v)
        return v

    return genlib_fn, anchor_fn, agreement


def cases(device: str = "cpu") -> list[Case]:
    """The RBM cases on ``device`` (genlib; scikit-learn always runs on the CPU).

    ``rbm_gibbs``: float32, genlib's ``num_steps`` call against as many ``gibbs`` calls (the target);
    ``rbm_gibbs_single``: the same with one genlib call per step; ``rbm_gibbs_float64``: both sides
    in float64. The last two are shown for information.
    """
    suffix = "" if device == "cpu" else f"_{device}"
    where = "" if device == "cpu" else f", {device} (scikit-learn on the CPU)"
    common = f"each timed call runs {STEPS} steps on each side; times per step. "
    return [
        Case(
            key=f"rbm_gibbs{suffix}",
            title=TITLE + where,
            anchor=ANCHOR,
            setup=lambda: _prepare(torch.float32, device, STEPS),
            target=2.0,
            repeats=7,
            device=device,
            per=STEPS,
            notes=common + f"float32 on both sides; genlib: one rbm_gibbs_step(..., num_steps={STEPS}) "
            f"call (same random numbers as {STEPS} one-step calls), scikit-learn: {STEPS} calls of "
            "gibbs(v), its only way to take several steps",
        ),
        Case(
            key=f"rbm_gibbs_single{suffix}",
            title=TITLE + ", one genlib call per step" + where,
            anchor=ANCHOR,
            setup=lambda: _prepare(torch.float32, device, 1),
            target=None,
            repeats=7,
            device=device,
            per=STEPS,
            notes=common + f"float32; {STEPS} calls of rbm_gibbs_step (inputs checked every call) "
            f"against {STEPS} calls of gibbs(v)",
        ),
        Case(
            key=f"rbm_gibbs_float64{suffix}",
            title=TITLE + ", float64" + where,
            anchor=ANCHOR,
            setup=lambda: _prepare(torch.float64, device, STEPS),
            target=None,
            repeats=7,
            device=device,
            per=STEPS,
            notes=common + f"float64 on both sides; num_steps={STEPS} against {STEPS} calls of gibbs(v). "
            "Bound by torch's float64 uniforms (two 32-bit mt19937 draws each)",
        ),
    ]


if __name__ == "__main__":
    results = [run_case(c) for c in cases()]
    print(markdown_table(results))
    for r in results:
        print(f"{r.key}: {r.agreement}")
