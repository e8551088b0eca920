"""Completed lifecycles over time, operator against peer and baseline, from agentcore-bench's CSV.

Left: objects Ready after the first create. Right: objects gone after the first delete.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    title = ""
    series = {}
    with open(path, newline="") as f:
        lines = []
        for line in f:
            if line.startswith("#"):
                title = title or line.lstrip("# ").strip()
            else:
                lines.append(line)
    for row in csv.DictReader(lines):
        key = (row["run"], row["milestone"])
        xs, ys = series.setdefault(key, ([0.0], [0]))
        xs.append(float(row["seconds"]))
        ys.append(int(row["count"]))
    return title, series


def main(csv_path, png_path):
    title, series = load(csv_path)
    colours = {"operator": "tab:blue", "peer": "tab:green", "baseline": "tab:orange"}
    fig, (ready, gone) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for run in ("operator", "peer", "baseline"):
        colour = colours[run]
        if (run, "started") in series and run == "operator":
            xs, ys = series[(run, "started")]
            ready.step(xs, ys, where="post", color=colour, linestyle=":", label="operator: job started")
        if (run, "ready") in series:
            xs, ys = series[(run, "ready")]
            label = "peer (controller-runtime)" if run == "peer" else run
            ready.step(xs, ys, where="post", color=colour, label=f"{label}: Ready")
        if (run, "gone") in series:
            xs, ys = series[(run, "gone")]
            label = "peer (controller-runtime)" if run == "peer" else run
            gone.step(xs, ys, where="post", color=colour, label=f"{label}: gone")
    ready.set_title("create all → Ready")
    gone.set_title("delete all → gone (lifecycle complete)")
    ready.set_xlabel("seconds after the first create")
    gone.set_xlabel("seconds after the first delete")
    ready.set_ylabel("objects")
    for ax in (ready, gone):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
