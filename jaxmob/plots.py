"""Figures every environment shares: learning curves (the maps belong to each environment)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # headless machines fall back to Agg; notebooks keep inline


def plot_learning_curve(rows: list[dict], path: Path, *, evals: list[dict] | None = None,
                        baselines: dict | None = None, title: str = "", train_label: str = "training",
                        eval_label: str = "validation days (argmax)", final: tuple | None = None,
                        metric: str = "service_ratio") -> Path:
    """Training return and the headline `metric` per update; periodic evaluations,
    baseline values (horizontal lines) and `final` = (update, value, label), the
    chosen checkpoint's score on the report days, on the same axis."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    x = [r["update"] for r in rows]
    axes[0].plot(x, [r["episode_return"] for r in rows], color="C0")
    axes[0].set_ylabel("episode return per agent")
    axes[1].plot(x, [r[metric] for r in rows], color="C0", label=train_label)
    if evals:
        axes[1].plot([e["update"] for e in evals], [e[metric] for e in evals], "o-", color="C1",
                     label=eval_label)
    for i, (name, value) in enumerate((baselines or {}).items()):
        axes[1].axhline(value, color=f"C{i + 2}", linestyle="--", linewidth=1, label=name)
    if final is not None:
        axes[1].plot([final[0]], [final[1]], "*", color="k", markersize=12, label=final[2])
    axes[1].set_ylabel("fulfilled service ratio" if metric == "service_ratio" else metric.replace("_", " "))
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
