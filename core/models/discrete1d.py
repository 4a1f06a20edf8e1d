"""Q1's models of one discrete variable x in {0..d-1}: a histogram and a discretized mixture of logistics."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Histogram(nn.Module):
    """p(x) = softmax(theta)_x, theta in R^d initialised to zero (the uniform distribution)."""

    def __init__(self, d: int):
        super().__init__()
        if d < 2:
            raise ValueError(f"d must be at least 2 (got {d})")
        self.d = d
        self.theta = nn.Parameter(torch.zeros(d))

    def log_probs(self) -> torch.Tensor:  # (d,)
        return F.log_softmax(self.theta, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B,) ints -> log p(x) (B,)
        return self.log_probs()[x]


def discretized_logistic_mixture_log_probs(logit_pi, mu, log_s, d: int) -> torch.Tensor:
    """log p(x) for every x in {0..d-1} under a mixture of K logistics discretized to unit bins.

    p(x) = sum_i pi_i [sigmoid((x+0.5-mu_i)/s_i) - sigmoid((x-0.5-mu_i)/s_i)], with the lower edge of x=0 at -inf
    and the upper edge of x=d-1 at +inf, so the d probabilities sum to 1.  Shapes: logit_pi, mu, log_s (K,) -> (d,)
    """
    x = torch.arange(d, dtype=mu.dtype, device=mu.device)[:, None]  # (d,1)
    inv_s = torch.exp(-log_s)                                         # (K,)
    plus = (x + 0.5 - mu) * inv_s                                     # (d,K)
    minus = (x - 0.5 - mu) * inv_s
    # log sigmoid(a) - stable log of the difference sigmoid(a) - sigmoid(b), with the edge cases at 0 and d-1
    cdf_plus = torch.sigmoid(plus)
    cdf_minus = torch.sigmoid(minus)
    log_mass = torch.log((cdf_plus - cdf_minus).clamp_min(1e-12))
    log_mass[0] = F.logsigmoid(plus[0])                               # P(x <= 0.5)
    log_mass[-1] = F.logsigmoid(-minus[-1])                           # P(x > d-1.5)
    return torch.logsumexp(log_mass + F.log_softmax(logit_pi, 0), dim=1)  # (d,)


class LogisticMixture(nn.Module):
    """Discretized mixture of K logistics; means start spread evenly over the range, scales at a bin width."""

    def __init__(self, d: int, k: int = 4):
        super().__init__()
        if d < 2 or k < 1:
            raise ValueError(f"need d >= 2 and k >= 1 (got d={d}, k={k})")
        self.d, self.k = d, k
        self.logit_pi = nn.Parameter(torch.zeros(k))
        self.mu = nn.Parameter((torch.arange(k, dtype=torch.float32) + 0.5) * (d - 1) / k)
        self.log_s = nn.Parameter(torch.full((k,), float(torch.log(torch.tensor(max(d / (4 * k), 1.0))))))

    def log_probs(self) -> torch.Tensor:  # (d,)
        return discretized_logistic_mixture_log_probs(self.logit_pi, self.mu, self.log_s, self.d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B,) -> (B,)
        return self.log_probs()[x]


def nll(model, x: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood in nats (one dimension per example)."""
    return -model(x).mean()
