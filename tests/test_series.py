"""Series data: reading, windows and their mapping back to time steps, per-channel scaling."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aekit
from aekit.data.series import (
    SeriesScaling,
    Windowing,
    dominant_period,
    from_values,
    to_steps,
    window_starts,
    windows,
)
from aekit.errors import DataError


@given(length=st.integers(1, 300), window=st.integers(1, 80), stride=st.integers(1, 90))
def test_windows_cover_every_step_and_stay_inside(length, window, stride):
    if length < window:
        with pytest.raises(DataError, match="shorter than the window"):
            window_starts(length, window, stride)
        return
    starts = window_starts(length, window, stride)
    assert starts[0] == 0 and starts[-1] == length - window  # first and last step covered
    assert np.all(np.diff(starts) > 0) and np.all(np.diff(starts) <= stride)
    covered = np.zeros(length, dtype=int)
    for s in starts:
        covered[s : s + window] += 1
    assert covered.min() >= 1


def test_windows_hold_the_series_and_map_back_exactly():
    x = np.arange(50, dtype=np.float32).reshape(25, 2)  # (T, C)
    w, starts = windows(x, 7, 3)
    assert w.shape == (len(starts), 2, 7)
    for k, s in enumerate(starts):
        np.testing.assert_array_equal(w[k], x[s : s + 7].T)
    # a value per position that is the step index comes back as the step index
    steps = to_steps(w[:, 0] / 2, starts, 7, 25)
    np.testing.assert_allclose(steps, np.arange(25))
    # one value per window: a step gets the mean over the windows that cover it
    per_window = np.arange(len(starts), dtype=float)
    got = to_steps(per_window, starts, 7, 25)
    assert got[0] == 0 and got[-1] == len(starts) - 1
    covering = [k for k, s in enumerate(starts) if s <= 12 < s + 7]
    assert got[12] == pytest.approx(np.mean(covering))


def test_the_dominant_period_of_a_real_signal():
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("membrane.dat") as f:  # a neuron's spike train, one spike every ~140 steps
        x = np.frombuffer(f.read(), np.float32)[1500:7000]
    period = dominant_period(x)
    assert 120 <= period <= 160
    assert dominant_period(np.random.default_rng(0).normal(size=500)) == 64  # no period: the fallback
    t = np.arange(2000)
    assert dominant_period(np.sin(2 * np.pi * t / 37)) in (37, 38)


def test_scaling_is_robust_and_round_trips():
    g = np.random.default_rng(0)
    x = np.stack([g.normal(5, 2, 1000), g.normal(-3, 0.1, 1000)], 1)
    x[:10, 0] = 1e6  # a few huge outliers do not move the scale
    s = SeriesScaling.fit(x)
    assert s.center[0] == pytest.approx(5, abs=0.3) and s.scale[0] == pytest.approx(2, rel=0.15)
    assert s.scale[1] == pytest.approx(0.1, rel=0.15)
    np.testing.assert_allclose(s.invert(s.apply(x[10:])), x[10:], rtol=1e-5)
    assert SeriesScaling.from_dict(s.to_dict()) == s
    flat = SeriesScaling.fit(np.ones((20, 1)))
    assert flat.scale == (1.0,)


def test_csv_with_and_without_time_column_npy_and_several_files(tmp_path):
    (tmp_path / "a.csv").write_text("time,x,y\n2024-01-01 00:00,1.5,2\n2024-01-01 00:01,2.5,3\n")
    data = aekit.load_dataset(f"series:{tmp_path / 'a.csv'}")
    assert data.shape == (2,) and len(data) == 2 and data.ids == ("2024-01-01 00:00", "2024-01-01 00:01")
    assert data.series.channels == ("x", "y") and data.series.time_column == "time"
    (tmp_path / "b.csv").write_text("1.0\n2.0\n3.0\n")
    b = aekit.load_dataset(f"series:{tmp_path / 'b.csv'}")
    assert b.shape == (1,) and b.ids is None and b.series.time_column is None
    dates = tmp_path / "c.csv"
    dates.write_text("2024-01-01,1\n2024-01-02,2\n")  # no header, a first column of dates
    assert aekit.load_dataset(f"series:{dates}").series.time_column == "column 1"
    folder = tmp_path / "many"
    folder.mkdir()
    np.save(folder / "s1.npy", np.arange(30, dtype=np.float64))
    np.save(folder / "s2.npy", np.arange(20, dtype=np.float32).reshape(20, 1))
    many = aekit.load_dataset(f"series:{folder}")
    assert many.series.lengths == (30, 20) and many.series.bounds == [(0, 30), (30, 50)]
    glob = aekit.load_dataset(f"series:{folder}/s*.npy")
    assert glob.series.lengths == (30, 20)
    # a prefix of the steps keeps the series it touches
    assert many.subset(np.arange(35)).series.lengths == (30, 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x\n1\n\n2\nabc\n", "row 5, column 'x' is 'abc'"),
        ("x,y\n1,2\n3,\n", "row 3, column 'y' is missing"),
        ("x\n1\ninf\n", "row 3, column 'x' is 'inf'"),
        ("x,y\n1,2\n3\n", "row 3 has 1 fields, expected 2"),
        ("time\n2024\n", "no channel besides the time column"),
        ("", "empty"),
    ],
)
def test_bad_csv_series_name_the_file_row_and_column(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        aekit.load_dataset(f"series:{path}")
    assert str(path) in str(e.value)


def test_files_whose_channels_differ_are_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((10, 2)))
    np.save(tmp_path / "b.npy", np.zeros((10, 3)))
    with pytest.raises(DataError, match="channels"):
        aekit.load_dataset(f"series:{tmp_path}")
    with pytest.raises(DataError, match="no such file"):
        aekit.load_dataset(f"series:{tmp_path / 'none.csv'}")


def test_windowing_picks_the_period_and_cuts_scaled_windows():
    t = np.arange(3000)
    data = from_values(np.stack([10 + 3 * np.sin(2 * np.pi * t / 50), np.cos(2 * np.pi * t / 50)], 1))
    w = Windowing.fit(data)
    assert w.window == 50 and w.stride == 6 and w.period_found
    cut, starts = w.cut(data)
    assert cut.shape == (2, 50) and len(cut) == len(starts[0])
    assert abs(float(np.median(np.asarray(cut.x)[:, 0]))) < 0.2  # channel 0 centred by its median
    assert Windowing.from_dict(w.to_dict()) == w
    assert Windowing.fit(data, window=20, stride=5).window == 20


# --- fuzzed like the other readers (tests/test_robustness.py): success or a DataError naming the file ---

CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["", "nan", "time", "2024-01-01", " 3 ", "1e999", "-", "日本", '"a,b"', "t"]),
)


@settings(max_examples=int(os.environ.get("AEKIT_FUZZ_EXAMPLES", "60")), deadline=None)
@given(rows=st.lists(st.lists(CELL, min_size=1, max_size=4), min_size=0, max_size=6), header=st.booleans())
def test_series_csv_of_any_content(tmp_path_factory, rows, header):
    path = tmp_path_factory.mktemp("series") / "s.csv"
    lines = ([",".join(["time", *(f"c{i}" for i in range(len(rows[0]) - 1))])] if header and rows else []) + [
        ",".join(r) for r in rows
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        data = aekit.load_dataset(f"series:{path}")
    except DataError as e:
        assert str(path) in str(e)
    else:
        x = np.asarray(data.x)
        assert x.ndim == 2 and len(x) == sum(data.series.lengths) and np.isfinite(x).all()
        assert data.ids is None or len(data.ids) == len(x)


@settings(max_examples=int(os.environ.get("AEKIT_FUZZ_EXAMPLES", "60")), deadline=None)
@given(data=st.binary(max_size=200))
def test_damaged_npy_series(tmp_path_factory, data):
    good = io.BytesIO()
    np.save(good, np.arange(12, dtype=np.float32).reshape(6, 2))
    path = tmp_path_factory.mktemp("series") / "s.npy"
    raw = good.getvalue()
    cut = len(data) % (len(raw) + 1)
    path.write_bytes(raw[:cut] + data if data else raw)
    try:
        series = aekit.load_dataset(f"series:{path}")
    except DataError as e:
        assert str(path) in str(e)
    else:
        assert np.isfinite(np.asarray(series.x)).all()


def test_a_limit_keeps_the_first_steps_in_time_order(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(100.0))
    data = aekit.load_dataset(f"series:{tmp_path / 's.npy'}", limit=30)
    np.testing.assert_array_equal(np.asarray(data.x)[:, 0], np.arange(30.0))
    assert data.series.lengths == (30,)
