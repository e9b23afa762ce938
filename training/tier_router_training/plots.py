"""The evaluation report's pictures: a confusion matrix, and traffic per tier by threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(report: dict[str, Any], path: Path) -> None:
    """Rows: true tier; columns: predicted; cells: count and share of the true tier."""
    plt = _pyplot()
    fig = confusion_figure(report)
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)


def confusion_figure(report: dict[str, Any]) -> Any:
    """The confusion matrix as a figure whose labels all lie inside it (drawn, laid out)."""
    plt = _pyplot()
    labels = report["confusion_matrix"]["labels"]
    counts = np.array(report["confusion_matrix"]["matrix"], dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 3, 1.4 * len(labels) + 2))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(counts[i, j])}\n{shares[i, j]:.0%}", ha="center", va="center",
                    color=colour, fontsize=10)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted tier")
    ax.set_ylabel("true tier")
    ax.set_title(f"{report['model_version']}: accuracy {report['accuracy']:.3f}, "
                 f"macro-F1 {report['macro_f1']:.3f}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true tier")
    # tight_layout, not layout="constrained": with the colorbar, constrained layout left the
    # y label and the longer tick labels outside the figure
    fig.tight_layout(pad=0.8)
    fig.canvas.draw()
    return fig


def plot_traffic(report: dict[str, Any], path: Path) -> None:
    """Share of traffic routed to each tier as the confidence threshold moves."""
    plt = _pyplot()
    fig = traffic_figure(report)
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)


def traffic_figure(report: dict[str, Any]) -> Any:
    """The traffic curve as a figure whose labels all lie inside it (drawn, laid out)."""
    plt = _pyplot()
    curve = report["threshold_curve"]
    xs = [point["threshold"] for point in curve]
    tiers = list(curve[0]["traffic_share"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for tier in tiers:
        ax.plot(xs, [100 * point["traffic_share"][tier] for point in curve], label=tier,
                linewidth=2)
    current = report["policy"]["confidence_threshold"]
    ax.axvline(current, color="grey", linestyle="--", linewidth=1)
    ax.annotate(f"threshold {current:.2f}", (current, 95), xytext=(6, 0),
                textcoords="offset points", fontsize=9, color="dimgrey")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 100)
    ax.set_xlabel("confidence threshold (below it, the cheaper of the two likeliest tiers)")
    ax.set_ylabel("% of requests routed to the tier")
    ax.set_title("Traffic per tier against the threshold", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(title="tier")
    fig.tight_layout()
    fig.canvas.draw()
    return fig
