"""The report's plots are fully labelled: every text lies inside the saved figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from classifier_service.routing.artifact import bundled_model_dir
from tests.conftest import write_jsonl
from tier_router_training.evaluate import evaluate
from tier_router_training.plots import confusion_figure, traffic_figure

ROWS = [{"prompt": p, "tier": t} for p, t in [
    ("Is this review positive or negative? 'Great phone.'", "simple"),
    ("Convert 5 km to miles.", "simple"),
    ("Summarise this paragraph about rail strikes in two sentences.", "medium"),
    ("Draft a polite email asking my landlord to fix the boiler.", "medium"),
    ("Write a short story about a lighthouse keeper who finds a message in a bottle.",
     "complex"),
    ("Design a distributed rate limiter and write its core in Go.", "complex")]]


def texts_outside(fig: Any) -> list[str]:
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    outside = []
    for text in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent")):
        if not text.get_visible() or not text.get_text().strip():
            continue
        extent = text.get_window_extent(renderer)
        if (extent.x0 < box.x0 - 0.5 or extent.y0 < box.y0 - 0.5 or extent.x1 > box.x1 + 0.5
                or extent.y1 > box.y1 + 0.5):
            outside.append(text.get_text())
    return outside


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("plots")
    data = write_jsonl(folder / "d.jsonl", ROWS)
    out = folder / "report"
    evaluate(bundled_model_dir(), [data], report_dir=out)
    assert (out / "confusion_matrix.png").stat().st_size > 10_000
    result: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return result


def test_the_confusion_matrix_keeps_its_labels_inside(report: dict[str, Any]) -> None:
    fig = confusion_figure(report)
    labels = {t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))}
    assert {"true tier", "predicted tier", "share of the true tier", "complex"} <= labels
    assert texts_outside(fig) == []


def test_the_traffic_plot_keeps_its_labels_inside(report: dict[str, Any]) -> None:
    fig = traffic_figure(report)
    assert texts_outside(fig) == []


def test_the_check_sees_a_label_cut_off(report: dict[str, Any]) -> None:
    fig = confusion_figure(report)
    fig.axes[0].set_ylabel("true tier", labelpad=400)  # pushed off the left edge
    fig.canvas.draw()
    assert "true tier" in texts_outside(fig)


def test_plot_files_are_written(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    evaluate(bundled_model_dir(), [data], report_dir=tmp_path / "r")
    assert {p.name for p in (tmp_path / "r").iterdir()} == {
        "report.json", "confusion_matrix.png", "traffic_share.png"}
