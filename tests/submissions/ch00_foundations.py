"""Sample submissions for ch00_foundations: a cheater, common mistakes, a broken notebook."""

from tests.submissions import SOLVED, Submission

SUBMISSIONS = [
    Submission(
        "cheater",
        {
            "part1_answer": "from genlib.sampling import sample_categorical",
            "part2_answer": SOLVED,
            "part3_answer": (
                "import genlib.estimators as mine\n"
                "def gaussian_mle(x, weights=None):\n"
                "    return mine.gaussian_mle(x, weights=weights)"
            ),
            "part4_answer": (
                "import genlib.divergences\n"  # the reference under the student's name
                "kl_categorical = genlib.divergences.kl_categorical"
            ),
            "part5_answer": (
                "from genlib.divergences import kl_monte_carlo as _kl\n"
                "def kl_monte_carlo(x, log_p, log_q):\n"
                "    return _kl(x, log_p, log_q)"
            ),
        },
        full_marks=("part2_visible", "part2_hidden"),
        feedback={
            "part1_visible": ("genlib's own function",),
            "part3_visible": ("genlib.estimators.gaussian_mle", "reference solution"),
            "part5_hidden": ("genlib.divergences.kl_monte_carlo",),
        },
    ),
    Submission(
        "mistakes",
        {
            # torch.multinomial samples the right distribution, but not by thresholding the
            # given uniforms: the statistics pass, the draw-for-draw comparisons do not.
            "part1_answer": (
                "def sample_categorical(probs, num_samples, generator=None):\n"
                "    flat = probs.reshape(-1, probs.shape[-1])\n"
                "    draws = torch.multinomial(\n"
                "        flat, num_samples, replacement=True, generator=generator\n"
                "    )\n"
                "    return draws.reshape(*probs.shape[:-1], num_samples)"
            ),
            # Forgets minlength: right unless the last categories never occur.
            "part2_answer": (
                "def categorical_mle(x, num_categories, weights=None):\n"
                "    if weights is None:\n"
                "        counts = torch.bincount(x).float()\n"
                "    else:\n"
                "        counts = torch.zeros(num_categories, dtype=weights.dtype)\n"
                "        counts = counts.index_add_(0, x, weights)\n"
                "    return counts / counts.sum()"
            ),
            # The unbiased covariance (divides by N - 1) is not the ML estimate.
            "part3_answer": (
                "def gaussian_mle(x, weights=None):\n"
                "    w = torch.ones(x.shape[0], dtype=x.dtype) if weights is None else weights\n"
                "    mean = (w[:, None] * x).sum(0) / w.sum()\n"
                "    return mean, torch.cov(x.T, aweights=w)"
            ),
            # 0 * log 0 gives nan.
            "part4_answer": ("def kl_categorical(p, q):\n    return (p * (p / q).log()).sum(-1)"),
            # The sign is the wrong way round.
            "part5_answer": ("def kl_monte_carlo(x, log_p, log_q):\n    return (log_q(x) - log_p(x)).mean()"),
        },
        scores={"part1_statistics": 1, "part2_visible": 1, "part4_visible": 1},
        feedback={
            "part2_hidden": ("should have shape (9,)", "minlength"),
            "part3_visible": ("N - 1",),
            "part4_hidden": ("NaN", "torch.xlogy"),
        },
    ),
    Submission(
        "broken",
        {
            "part1_answer": "def sample_categorical(probs, num_samples, generator=None)\n    return 0",
            "part2_answer": (
                "def categorical_mle(x, num_categories, weights=None):\n"
                "    while True:\n"
                "        try:\n"
                "            pass\n"
                "        except Exception:\n"
                "            pass"
            ),
            "part3_answer": SOLVED,
            "part4_answer": "def kl_categorical(p, q):\n    return torch.zeros(p.shape[:-1])",
            "part4_visible": "pass  # the student deleted the test",
            "part4_hidden": "assert True",
            "part5_answer": "def kl_monte_carlo(x, log_p, log_q):\n    import sys\n    sys.exit(1)",
        },
        full_marks=("part3_visible", "part3_hidden"),
        feedback={
            "part1_visible": ("NameError",),
            "part2_visible": ("ran longer than",),
            "part4_visible": ("KL(p || q)",),
            "part5_visible": ("SystemExit",),
        },
    ),
]
