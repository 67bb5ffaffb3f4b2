"""Sample submissions for ch03_em_elbo: a cheater, common mistakes, a broken notebook."""

from tests.submissions import SOLVED, Submission

SUBMISSIONS = [
    Submission(
        "cheater",
        {
            "part1_answer": (
                "from genlib.em import e_step as _ref_e_step\n"
                "from genlib.mixtures import GaussianMixture\n"
                "def e_step(x, weights, means, covariances):\n"
                "    return _ref_e_step(x, GaussianMixture(weights, means, covariances))"
            ),
            "part2_answer": SOLVED,
            "part3_answer": (
                "import genlib.mixtures as mine\n"
                "def elbo(x, weights, means, covariances, log_q):\n"
                "    lj = mine.gmm_log_joint(x, mine.GaussianMixture(weights, means, covariances))\n"
                "    q = log_q.exp()\n"
                "    return torch.where(q > 0, q * (lj - log_q), torch.zeros_like(q)).sum()"
            ),
            "part4_answer": (
                "import genlib.em\n"
                "def em_iteration(x, weights, means, covariances, reg_covar=0.0):\n"
                "    new, ll, _ = genlib.em.em_step(x, genlib.mixtures.GaussianMixture(weights, means, "
                "covariances), reg_covar=reg_covar)\n"
                "    return new.weights, new.means, new.covariances, ll"
            ),
        },
        full_marks=("part2_visible", "part2_hidden", "part2_reg"),
        feedback={
            "part1_visible": ("genlib.mixtures.GaussianMixture", "reference solution"),
            "part1_stability": ("switched off",),
            "part3_visible": ("genlib.mixtures.GaussianMixture",),
            "part4_visible": ("reference solution",),
            "part4_monotone": ("reference solution",),
        },
    ),
    Submission(
        "mistakes",
        {
            # Bayes' rule with exp and log: right near the components, nan far from them.
            "part1_answer": (
                "def e_step(x, weights, means, covariances):\n"
                "    joint = log_joint(x, weights, means, covariances).exp()\n"
                "    px = joint.sum(dim=1)\n"
                "    return (joint / px[:, None]).log(), px.log().sum()"
            ),
            # Forgets the regulariser.
            "part2_answer": (
                "def m_step(x, resp, reg_covar=0.0):\n"
                "    nk = resp.sum(dim=0)\n"
                "    means = (resp.T @ x) / nk[:, None]\n"
                "    c = x[None] - means[:, None]\n"
                "    cov = torch.einsum('nk,kni,knj->kij', resp, c, c) / nk[:, None, None]\n"
                "    return nk / x.shape[0], means, cov"
            ),
            # Q * (log_joint - log_q) without 0 log 0 = 0: nan where Q has zeros.
            "part3_answer": (
                "def elbo(x, weights, means, covariances, log_q):\n"
                "    return (log_q.exp() * (log_joint(x, weights, means, covariances) - log_q)).sum()"
            ),
            # Returns the log-likelihood of the new parameters instead of the given ones.
            "part4_answer": (
                "def em_iteration(x, weights, means, covariances, reg_covar=0.0):\n"
                "    log_q, _ = e_step(x, weights, means, covariances)\n"
                "    w, m, c = m_step(x, log_q.exp(), reg_covar=reg_covar)\n"
                "    _, ll = e_step(x, w, m, c)\n"
                "    return w, m, c, ll"
            ),
        },
        scores={
            "part1_visible": 1,
            "part1_hidden": 2,
            "part2_visible": 1,
            "part2_hidden": 1,
            "part3_visible": 1,
            "part3_hidden": 1,
            "part4_monotone": 1,
        },
        feedback={
            "part1_stability": ("torch.logsumexp", "NaN"),
            "part2_reg": ("reg_covar * identity",),
            "part3_zeros": ("torch.where", "NaN"),
            "part4_visible": ("item 3 of the output", "GIVEN"),
        },
    ),
    Submission(
        "broken",
        {
            "part1_answer": "def e_step(x, weights, means, covariances)\n    return x",
            "part2_answer": SOLVED,
            "part2_visible": "pass  # the student deleted the test",
            "part3_answer": "def elbo(x, weights, means, covariances, log_q):\n    while True:\n        pass",
            "part4_answer": (
                "def em_iteration(x, weights, means, covariances, reg_covar=0.0):\n"
                "    raise ValueError('not sure how to centre the covariances')"
            ),
        },
        feedback={
            "part1_visible": ("NameError",),
            "part2_visible": ("five points, two components",),
            "part3_visible": ("ran longer than",),
            "part4_visible": ("ValueError", "not sure how to centre"),
        },
        full_marks=("part2_visible", "part2_hidden", "part2_reg"),
    ),
]
