"""Class metrics from the evaluator's softmax: coverage, histogram KL, confidence, score.

These need no real features, only ctx.class_prior (the train split's class histogram);
`real` is accepted for the common signature and ignored.
"""

from __future__ import annotations

import math

import torch

from .base import Evidence, MetricContext

# Added to every class before renormalising both histograms in class_kl: keeps the KL finite
# when the prior has an empty class the samples hit; with K=10 and a missing class it
# moves the value by < 1e-4.
CLASS_KL_EPS = 1e-6


def predicted_histogram(probs: torch.Tensor) -> torch.Tensor:
    """(K,) float64 share of samples whose argmax prediction is each class."""
    k = probs.shape[1]
    return torch.bincount(probs.argmax(dim=1), minlength=k).double() / probs.shape[0]


def class_coverage(samples: Evidence, real: Evidence, ctx: MetricContext) -> dict[str, float]:
    """Number of classes holding >= coverage_threshold of the samples (a float; higher is better)."""
    hist = predicted_histogram(samples.probs)
    return {"class_coverage": float((hist >= ctx.coverage_threshold).sum())}


def class_kl(samples: Evidence, real: Evidence, ctx: MetricContext) -> dict[str, float]:
    """KL(predicted-class histogram of samples || class_prior), smoothed by CLASS_KL_EPS.

    Rewards matching class *proportions*: it is 0 for a generator whose predicted classes
    follow the train split, log K-ish for one that emits a single class.
    """
    prior = ctx.class_prior.double()
    hist = predicted_histogram(samples.probs)
    if prior.shape != hist.shape:
        raise ValueError(f"class_prior has {prior.numel()} classes, probs have {hist.numel()}")
    p = (hist + CLASS_KL_EPS) / (1 + CLASS_KL_EPS * hist.numel())
    q = (prior + CLASS_KL_EPS) / (1 + CLASS_KL_EPS * prior.numel())
    return {"class_kl": float((p * (p / q).log()).sum())}


def confidence(samples: Evidence, real: Evidence, ctx: MetricContext) -> dict[str, float]:
    """Mean max probability: how sure the evaluator is that samples look like some class."""
    return {"confidence": float(samples.probs.double().max(dim=1).values.mean())}


def classifier_score(samples: Evidence, real: Evidence, ctx: MetricContext) -> dict[str, float]:
    """The "inception score" exp(E_x KL(p(y|x) || p(y))) with the evaluator's probs, one split.

    Ranges from 1 (every sample gets the same prediction) to K (confident and class-balanced).
    0·log 0 is taken as 0 (xlogy), so one-hot predictions are fine.
    """
    p = samples.probs.double()
    marginal = p.mean(dim=0, keepdim=True)
    kl = (torch.xlogy(p, p) - torch.xlogy(p, marginal)).sum(dim=1)
    return {"classifier_score": math.exp(float(kl.mean()))}
