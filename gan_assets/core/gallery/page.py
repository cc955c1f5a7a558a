"""The per-experiment HTML gallery: the best checkpoint's grid and scores, charts over training, the score
table, and the views of `gallery_views` (images) or the high-quality scatters (2-D mixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gan_assets.core.config import GalleryConfig
from gan_assets.core.data.images import ImageSet, PointSet
from gan_assets.core.data.reference import ReferenceBatch
from gan_assets.core.evaluation.classifier import Classifier
from gan_assets.core.evaluation.devices import CPU, placed
from gan_assets.core.evaluation.loading import load_generator
from gan_assets.core.evaluation.sampling import SAMPLING_MODES, class_labels, generate
from gan_assets.core.evaluation.scoring import REAL_FLOOR
from gan_assets.core.evaluation.verdict import verdict_of, with_verdict_columns
from gan_assets.core.gallery.grids import Gallery
from gan_assets.core.gallery.html import Figure, Section, write_page
from gan_assets.core.gallery.plots import render_loss_curves_png, render_score_curves_png
from gan_assets.core.gallery.views import (
    batch_dependence,
    class_rows,
    interpolations,
    nearest_neighbours,
    seeded_z,
)
from gan_assets.core.training.manifest import RunManifest

HEADLINE_SCORES = ("fd", "kid", "precision", "recall", "class_coverage", "nn_ratio", "modes", "hq_fraction",
                   "reverse_kl")
GALLERY_SEED_OFFSET = 7_000  # the gallery's extra z never coincide with training's or scoring's draws
DISPLAY_WIDTH = 480  # CSS pixels for a main image: small grids are shown enlarged
FAMILY_VIEWS = ("the batch-norm demonstration is the GAN's alone; the FVBN has no latent interpolations, its z being "
                "the per-pixel draws")


def headline(row: pd.Series) -> str:
    """"fd 14.9, kid 0.0123, …": the scores a reader compares first, 4 significant digits."""
    return ", ".join(f"{c} {float(row[c]):.4g}" for c in HEADLINE_SCORES if c in row and pd.notna(row[c]))


def score_chart_png(scores: pd.DataFrame, best: str | None = None) -> bytes:
    """Every score over the checkpoints beside its real floor, the `best` checkpoint marked: drawn once, shown in the
    UI and on the page."""
    step = None if best is None else scores.loc[scores["name"] == best, "step"].iloc[0]
    return render_score_curves_png(scores[scores["name"] != REAL_FLOOR], scores[scores["name"] == REAL_FLOOR].iloc[0],
                                   best_step=None if step is None or pd.isna(step) else int(step))


def verdict_section(scores: pd.DataFrame, best: str) -> Section:
    """The page's first section: the best checkpoint's grade, its FD ratio and why (`verdict_of`, as the UI and the
    JSON line show it)."""
    verdict = verdict_of(scores, best)
    ratio = "" if verdict.fd_ratio is None else f"FD {verdict.as_dict()['fd_ratio']}× the real floor. "
    return Section(f"Verdict: {verdict.grade}", f"{ratio}Checkpoint {best}; the grades and their thresholds are in "
                   "docs/metrics.md (\"Is it good? The verdict\").", items=list(verdict.reasons))


def overview_sections(manifest: RunManifest, gallery: Gallery, scores: pd.DataFrame, best: str,
                      score_chart: bytes) -> list[Section]:
    best_row = scores[scores["name"] == best].iloc[0]
    floor = scores[scores["name"] == REAL_FLOOR].iloc[0]
    return [
        Section(f"Best checkpoint: {best}", f"{headline(best_row)}. Real floor (held-out data against train): "
                f"{headline(floor)}. The same reference z fill the same cell at every checkpoint.",
                figures=[Figure(gallery.arrays[best], best, width=DISPLAY_WIDTH, best=True)]),
        Section("Progress over training", "One row per checkpoint, the same z in each column.",
                figures=[Figure(gallery.progress_labelled, "progress", width=DISPLAY_WIDTH + 120)]),
        Section("Scores over training", "Each score per checkpoint; the dashed line is the real floor, the dotted red line "
                "(and ring) the best checkpoint.",
                figures=[Figure(score_chart, "scores over training")]),
        Section("Losses over training", "The players' costs, and D's mean output on real and generated samples.",
                figures=[Figure(render_loss_curves_png(manifest.history_frame()), "loss curves")]),
        Section("Score table", "Every checkpoint, then the real floor; grade and fd_ratio as in the verdict.",
                table=with_verdict_columns(scores)),
        Section("Every checkpoint", figures=[Figure(gallery.arrays[n], n, width=200, best=n == best)
                                             for n in gallery.arrays]),
    ]


def image_view_sections(manifest: RunManifest, best: str, *, reference: ReferenceBatch, sampling: str,
                        classifier: Classifier, data: ImageSet, config: GalleryConfig, seed: int,
                        nn_ratio: float | None, device: torch.device = CPU, weights: str = "ema") -> list[Section]:
    """The views of the best checkpoint (its `weights`: `load_generator`), its G and the evaluator run on `device`."""
    entry = next(e for e in manifest.checkpoints if e.name == best)
    generator = load_generator(manifest, entry, sampling, *reference.tensors(), device=device, weights=weights)
    classifier = placed(classifier, device)
    seed = seed + GALLERY_SEED_OFFSET
    sections = [class_section(class_rows(generator, classifier=classifier, class_names=data.class_names,
                                         per_class=config.per_class, seed=seed), generator.conditional)]
    if config.interpolation_pairs and getattr(generator, "has_latent_space", True):  # the FVBN's z are pixel draws
        paths = interpolations(generator, pairs=config.interpolation_pairs, steps=config.interpolation_steps, seed=seed)
        sections.append(Section("Latent interpolations", "Each row walks from one fixed z to another: linear "
                                "(a straight line) and spherical (along the prior's shell). Smooth changes mean "
                                "the latent space is used as a whole, not memorised point by point.",
                                figures=[Figure(image, name, width=DISPLAY_WIDTH) for name, image in paths.items()]))
    if config.neighbour_samples:
        samples = generate(generator, seeded_z(config.neighbour_samples, generator.z_dim, seed + 1),
                           class_labels(generator, config.neighbour_samples))
        found = nearest_neighbours(samples, data.subset("train").examples, classifier=classifier,
                                   k=config.neighbours, seed=seed)
        sections.append(neighbour_section(found, nn_ratio))
    if config.batch_dependence_targets and manifest.model.family == "gan":  # the other families have no batch norm
        generators = {mode: load_generator(manifest, entry, mode, *reference.tensors(), device=device, weights=weights)
                      for mode in SAMPLING_MODES}
        sections.append(batch_section(batch_dependence(generators, targets=config.batch_dependence_targets, seed=seed)))
    return sections


def class_section(rows, conditional: bool) -> Section:
    if conditional:
        note = "A conditional G asked for each class in turn, the same z in each column."
        labelled = [(row.name, Figure(row.grid, width=DISPLAY_WIDTH)) for row in rows]
    else:
        note = ("An unconditional G's samples, sorted by the evaluator's predicted class (the most confident "
                "first), with each class's share of all samples: a missing class or a large share is mode "
                "dropping or mode collapse.")
        labelled = [(f"{row.name} ({row.share:.1%})", Figure(row.grid, width=DISPLAY_WIDTH)
                     if row.grid is not None else None) for row in rows]
    return Section("One row per class", note, rows=labelled)


def neighbour_section(found, nn_ratio: float | None) -> Section:
    ratio = f" nn_ratio of the best checkpoint: {nn_ratio:.4g} (near 0: copies; near 1: as far as held-out data)." \
        if nn_ratio is not None else ""
    table = pd.DataFrame({"sample": np.arange(1, len(found.distances) + 1),
                          **{f"distance {j + 1}": found.distances[:, j] for j in range(found.distances.shape[1])}})
    return Section("Nearest training neighbours", "Each row: a generated sample, then the training images nearest "
                   "it in the evaluator's feature space, nearest first (distances below)." + ratio,
                   figures=[Figure(found.grid, "sample | nearest training images", width=DISPLAY_WIDTH // 2)],
                   table=table)


def batch_section(views) -> Section:
    table = pd.DataFrame([{"batch norm": v.mode, **v.differences} for v in views])
    note = ("Tutorial §4.3: the same z generated alone (row 1) and as the first images of two minibatches whose "
            "other z differ (rows 2, 3). Train-mode batch norm normalises each minibatch by its own statistics, "
            "so the same z changes with its neighbours; eval-mode and reference batch norm fix the statistics. "
            "The table gives the mean absolute pixel difference (grey levels, 0..255).")
    return Section("Batch dependence of batch norm", note,
                   figures=[Figure(v.grid, f"{v.mode}-mode batch norm", width=DISPLAY_WIDTH // 2) for v in views],
                   table=table)


def point_sections(gallery: Gallery, best: str) -> list[Section]:
    return [Section("Samples over the true modes", "Blue: high quality (within 3 standard deviations of a mode "
                    "centre, red rings); orange: the rest.",
                    figures=[Figure(gallery.arrays[best], best, best=True)])]


def write_gallery_html(path: Path, *, title: str, manifest: RunManifest, gallery: Gallery, scores: pd.DataFrame,
                       score_chart: bytes,
                       best: str, reference: ReferenceBatch, sampling: str, classifier: Classifier,
                       data: ImageSet | PointSet, config: GalleryConfig, seed: int,
                       device: torch.device = CPU, weights: str = "ema") -> Path:
    """Write the page, its samples drawn from `weights` (`load_generator`) on `device`; everything it shows is drawn
    from fixed z and seeds, so a rerun draws the same page."""
    sections = overview_sections(manifest, gallery, scores, best, score_chart)
    if isinstance(data, PointSet):
        sections[1:1] = point_sections(gallery, best)
    else:
        best_scores = scores[scores["name"] == best].iloc[0]
        nn_ratio = float(best_scores["nn_ratio"]) if "nn_ratio" in scores and pd.notna(best_scores["nn_ratio"]) else None
        sections[2:2] = image_view_sections(manifest, best, reference=reference, sampling=sampling,
                                            classifier=classifier, data=data, config=config, seed=seed,
                                            nn_ratio=nn_ratio, device=device, weights=weights)
    summary = (f"{len(manifest.checkpoints)} checkpoints of {manifest.run_dir.name}, sampled in {sampling!r} "
               f"batch-norm mode. Every image is embedded in this file.")
    if manifest.model.family != "gan":
        summary = (f"{len(manifest.checkpoints)} checkpoints of {manifest.run_dir.name}, model family "
                   f"{manifest.model.family!r} (no batch norm; {FAMILY_VIEWS}). Every image is embedded in this file.")
    return write_page(path, f"Gallery of {title}", summary, [verdict_section(scores, best), *sections])
