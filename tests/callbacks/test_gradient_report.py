"""The CSV, figure and table that gradient statistics are reported in."""

import csv

from bgpo_lightning.callbacks.gradient_report import (
    COLUMNS,
    append_csv,
    format_table,
    statistics_figure,
)


def rows(step, objectives=("bgpo", "vrpo_ol"), grid=(1, 2, 4)):
    return [
        {
            "step": step,
            "objective": objective,
            "n_t": n_t,
            "repeats": 8,
            "mean_std": 1.0 / n_t**0.5,
            "bias": 0.5 / n_t**0.5,
            "cosine": 1 - 0.1 / n_t,
            "golden_n_t": 256,
            "num_params": 1000,
            "seconds": 0.1,
            "cosine_of_mean": 1 - 0.01 / n_t,
        }
        for objective in objectives
        for n_t in grid
    ]


def test_csv_has_one_header_and_grows_by_appending(tmp_path):
    path = tmp_path / "logs" / "stats.csv"
    append_csv(path, rows(10))
    append_csv(path, rows(20))
    with path.open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        read = list(reader)
    assert len(read) == 12
    assert [r["step"] for r in read] == ["10"] * 6 + ["20"] * 6
    assert float(read[1]["mean_std"]) == 1 / 2**0.5


def test_figure_has_log_log_panels_with_one_line_per_objective():
    figure = statistics_figure(rows(5))
    std_panel, bias_panel = figure.axes
    for panel in (std_panel, bias_panel):
        assert panel.get_xscale() == "log" and panel.get_yscale() == "log"
        labels = [line.get_label() for line in panel.get_lines()]
        assert labels == ["bgpo", "1/sqrt(n_t)", "vrpo_ol"]
        assert list(panel.get_lines()[0].get_xdata()) == [1, 2, 4]
    assert list(bias_panel.get_lines()[0].get_ydata()) == [0.5 / n**0.5 for n in (1, 2, 4)]
    assert "step 5" in figure.get_suptitle()


def test_table_lists_every_row():
    table = format_table(rows(1, objectives=("bgpo",)))
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].split()[:3] == ["objective", "n_t", "mean_std"]
    assert lines[2].split()[:2] == ["bgpo", "1"]
