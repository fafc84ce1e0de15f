"""Smoke tests for Figure 3 rendering (paper Sec. 5.4-5.5, panels a-d)."""
from __future__ import annotations

import pandas as pd
import pytest

from paper_tables.render import render_figure3, render_figure3_panels

PANELS = {
    "a": ("variant", ["none", "no-comp", "no-ft", "full", "ft-only"]),
    "b": ("aux_size", [5, 10, 20, 40]),
    "c": ("lambda", [0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0]),
    "d": ("eta", [0.1, 0.5, 1.5, 2.5, 3.5, 5]),
}


@pytest.fixture(scope="module")
def fig_df():
    rows = []
    for panel, (name, values) in PANELS.items():
        for num in ([10, 20] if panel == "b" else [10]):
            for i, v in enumerate(values):
                for seed in range(2):
                    rows.append(dict(
                        panel=panel, method="fskd", num=num,
                        variant=v if panel == "a" else "full",
                        param_name=name, param_value=None if panel == "a" else v,
                        seed=seed, top1=60.0 + i + 0.5 * seed,
                    ))
    return pd.DataFrame(rows)


def _check(paths):
    png, pdf = paths["png"].read_bytes(), paths["pdf"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


def test_all_panels_written(tmp_path, fig_df):
    out = render_figure3_panels(fig_df, tmp_path, {"a": "Ablation (reproduced)"})
    assert set(out) == {"a", "b", "c", "d"}
    for panel, paths in out.items():
        assert paths == {"png": tmp_path / f"fig3{panel}.png", "pdf": tmp_path / f"fig3{panel}.pdf"}
        _check(paths)
    # only the final files remain (atomic writes leave no temp files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"fig3{p}.{ext}" for p in "abcd" for ext in ("png", "pdf"))


def test_panel_without_runs_still_written(tmp_path, fig_df):
    _check(render_figure3("c", fig_df[fig_df.panel != "c"], tmp_path / "sub"))


def test_bad_panel_rejected(tmp_path, fig_df):
    with pytest.raises(ValueError):
        render_figure3("e", fig_df, tmp_path)


def test_figures_get_plain_file_permissions_like_tables(tmp_path, fig_df):
    """Not mkstemp's 0600: figures are as readable as the tables and records beside them."""
    import os
    import stat
    old = os.umask(0o022)
    try:
        paths = render_figure3("c", fig_df, tmp_path)
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths.values()} == {0o644}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
