"""The README's main job: python -m bounds.demo prints the growth table and saves the plot."""

import pytest

import bounds.demo


def test_demo_prints_shift_next_to_lemma1_bound_and_saves_plot(tmp_path, capsys):
    out = tmp_path / "shift.png"
    curve = bounds.demo.main(["--agents", "4", "--actions", "2", "--states", "5", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "Lemma 1 bound" in printed
    rows = [line.split() for line in printed.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == [0, 1, 2, 3, 4]
    for row, k in zip(rows, curve.k, strict=True):
        assert float(row[2]) == round(curve.shift_mean[k], 6)
        assert float(row[5]) == round(curve.bound_mean[k], 6)
        # every agent has the same TV, so each subset of size k has this bound: Lemma 1 for the worst subset
        assert float(row[4]) <= float(row[5])
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_every_package_imports():
    import deep
    import tabular

    assert deep.__doc__ and tabular.DecMDP and bounds.lemma1


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path, capsys):
    """A user error (gamma outside [0, 1)) is argparse's one-line error naming the argument, not a traceback."""
    with pytest.raises(SystemExit) as stop:
        bounds.demo.main(["--gamma", "1.5", "--out", str(tmp_path / "x.png")])
    error = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and error[-1].startswith("python -m bounds.demo: error: gamma:")
    assert not (tmp_path / "x.png").exists()
