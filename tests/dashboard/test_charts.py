"""The metric chart breaks its line where readings are missing."""

from __future__ import annotations

import pandas as pd

from dashboard.charts import metric_chart, with_segments


def _points(seconds: list[int], bucket_s: int = 10) -> pd.DataFrame:
    ts = pd.Timestamp("2026-03-02 12:00") + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame({"ts": ts, "min": 1.0, "avg": 2.0, "max": 3.0, "bucket_s": bucket_s})


def test_a_gap_of_more_than_three_buckets_starts_a_new_segment():
    seg = with_segments(_points([0, 10, 20, 30, 100, 110, 400]))["segment"].tolist()
    assert seg == [0, 0, 0, 0, 1, 1, 2]


def test_regular_readings_stay_one_segment_and_downsampled_buckets_scale_the_gap():
    assert set(with_segments(_points(list(range(0, 600, 10))))["segment"]) == {0}
    # hourly buckets: two hours apart is no gap, four hours apart is
    seg = with_segments(_points([0, 3600, 7200, 7200 + 4 * 3600 + 1], bucket_s=3600))["segment"].tolist()
    assert seg == [0, 0, 0, 1]


def test_the_chart_draws_each_segment_apart():
    spec = metric_chart(_points([0, 10, 20, 200, 210]), "°C", [], []).to_dict()
    line = next(layer for layer in spec["layer"] if layer["mark"] == "line" or layer["mark"].get("type") == "line")
    assert line["encoding"]["detail"]["field"] == "segment"
