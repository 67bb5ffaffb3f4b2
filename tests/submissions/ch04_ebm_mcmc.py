"""Sample submissions for ch04_ebm_mcmc: a cheater, common mistakes, a broken notebook."""

from tests.submissions import SOLVED, Submission

SUBMISSIONS = [
    Submission(
        "cheater",
        {
            "part1_answer": "from genlib.ebm import bm_energy, bm_log_partition",
            "part2_answer": (
                "import genlib.ebm as mine\n"
                "import genlib.mcmc\n"
                "def rbm_hidden_probs(v, weight, hidden_bias):\n"
                "    return mine.rbm_hidden_probs(v, weight, hidden_bias)\n"
                "def rbm_visible_probs(h, weight, visible_bias):\n"
                "    return mine.rbm_visible_probs(h, weight, visible_bias)\n"
                "def rbm_gibbs_step(v, weight, visible_bias, hidden_bias, generator=None):\n"
                "    step = genlib.mcmc.rbm_gibbs_step\n"
                "    return step(v, weight, visible_bias, hidden_bias, generator=generator)"
            ),
            "part3_answer": SOLVED,
            "part4_answer": (
                "from genlib.mcmc import langevin_step as _step\n"
                "def langevin_step(x, energy, step_size, generator=None):\n"
                "    return _step(x, energy, step_size, generator=generator)"
            ),
            "part5_answer": "import genlib.ebm_training\ncd1_gradient = genlib.ebm_training.rbm_cd_gradient",
        },
        full_marks=("part3_visible", "part3_hidden", "part3_statistics"),
        feedback={
            "part1_visible": ("genlib's own function",),
            "part2_visible": ("genlib.ebm.rbm_hidden_probs", "reference solution"),
            "part2_statistics": ("genlib.mcmc.rbm_gibbs_step",),
            "part4_stationarity": ("genlib.mcmc.langevin_step",),
            "part5_hidden": ("genlib's own function",),
        },
    ),
    Submission(
        "mistakes",
        {
            # Right energy, but log Z as log(sum(exp(-E))): fine until exp overflows.
            "part1_answer": (
                "def bm_energy(x, weight, bias):\n"
                "    return -0.5 * ((x @ weight) * x).sum(-1) - x @ bias\n"
                "def bm_log_partition(weight, bias, temperature=1.0):\n"
                "    d = weight.shape[0]\n"
                "    k = torch.arange(2**d)\n"
                "    states = ((k[:, None] >> torch.arange(d)) & 1).to(weight.dtype)\n"
                "    return torch.log(torch.exp(-bm_energy(states, weight, bias) / temperature).sum())"
            ),
            # Forgets the generator (torch.rand_like draws from the global one): the chain is right
            # (the statistics pass), but not reproducible, so the draw-for-draw comparisons fail.
            "part2_answer": (
                "def rbm_hidden_probs(v, weight, hidden_bias):\n"
                "    return torch.sigmoid(v @ weight + hidden_bias)\n"
                "def rbm_visible_probs(h, weight, visible_bias):\n"
                "    return torch.sigmoid(h @ weight.T + visible_bias)\n"
                "def rbm_gibbs_step(v, weight, visible_bias, hidden_bias, generator=None):\n"
                "    p_h = rbm_hidden_probs(v, weight, hidden_bias)\n"
                "    h = (torch.rand_like(p_h) < p_h).to(v.dtype)\n"
                "    p_v = rbm_visible_probs(h, weight, visible_bias)\n"
                "    return (torch.rand_like(p_v) < p_v).to(v.dtype), h"
            ),
            # The ratio of probabilities exp(-E') / exp(-E): 0 / 0 when the energies are large.
            "part3_answer": (
                "def metropolis_hastings_step(x, energy, step_size, generator=None):\n"
                "    proposal = x + step_size * torch.randn(x.shape, generator=generator, dtype=x.dtype)\n"
                "    u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)\n"
                "    ratio = torch.exp(-energy(proposal)) / torch.exp(-energy(x))\n"
                "    accepted = u < ratio\n"
                "    return torch.where(accepted[:, None], proposal, x), accepted"
            ),
            # Noise sqrt(eps) instead of sqrt(2 eps): the chain is too narrow.
            "part4_answer": (
                "def langevin_step(x, energy, step_size, generator=None):\n"
                "    x = x.detach().requires_grad_(True)\n"
                "    grad = torch.autograd.grad(energy(x).sum(), x)[0]\n"
                "    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)\n"
                "    return (x - step_size * grad + math.sqrt(step_size) * noise).detach()"
            ),
            # Sums over the batch instead of averaging: right for one data vector only.
            "part5_answer": (
                "def cd1_gradient(v, weight, visible_bias, hidden_bias, generator=None):\n"
                "    v1, _ = rbm_gibbs_step(v, weight, visible_bias, hidden_bias, generator=generator)\n"
                "    h0 = rbm_hidden_probs(v, weight, hidden_bias)\n"
                "    h1 = rbm_hidden_probs(v1, weight, hidden_bias)\n"
                "    return v.T @ h0 - v1.T @ h1, (v - v1).sum(0), (h0 - h1).sum(0)"
            ),
        },
        scores={
            "part1_visible": 1,
            "part1_energy": 1,
            "part2_statistics": 1,
            "part3_visible": 1,
            "part3_statistics": 1,
        },
        feedback={
            "part1_log_partition": ("torch.logsumexp", "got inf"),
            "part2_visible": ("from the generator you are given",),
            "part3_hidden": ("0 / 0 is nan",),
            "part4_visible": ("sqrt(2 * step_size)",),
            "part4_stationarity": ("noise sqrt(eps)",),
            "part5_visible": ("divide by N",),
        },
    ),
    Submission(
        "broken",
        {
            "part1_answer": "def bm_energy(x, weight, bias)\n    return 0",
            "part2_answer": SOLVED,
            "part3_answer": (
                "def metropolis_hastings_step(x, energy, step_size, generator=None):\n    return x"
            ),
            "part4_answer": (
                "def langevin_step(x, energy, step_size, generator=None):\n"
                "    while True:\n"
                "        try:\n"
                "            pass\n"
                "        except Exception:\n"
                "            pass"
            ),
            "part4_visible": "pass  # the student deleted the test",
            "part4_stationarity": "assert True",
            "part5_answer": (
                "def cd1_gradient(v, weight, visible_bias, hidden_bias, generator=None):\n"
                "    import sys\n"
                "    sys.exit(1)"
            ),
        },
        full_marks=("part2_visible", "part2_hidden", "part2_statistics"),
        feedback={
            "part1_visible": ("NameError",),
            "part3_visible": ("should be a tuple of 2 items",),
            "part4_visible": ("ran longer than",),
            "part5_visible": ("SystemExit",),
        },
    ),
]
