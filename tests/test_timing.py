"""deepbasis.train.timing: the Table 1 measurement returns complete, consistent records (no
timing asserts)."""

from __future__ import annotations

import json

import pytest
import torch

from deepbasis.train.timing import PAPER_TABLE1, TABLE1_SIZES, lsgd_gd_time_ratio


def test_record_is_complete_and_consistent():
    threads = torch.get_num_threads()
    result = lsgd_gd_time_ratio(4, 4, steps=3, repeats=2, threads=1)
    json.dumps(result)
    assert torch.get_num_threads() == threads  # restored
    assert len(result["lsgd_seconds"]) == len(result["gd_seconds"]) == 2
    assert result["ratio"] == pytest.approx(result["lsgd"] / result["gd"])
    assert result["gd_vs_bare"] == pytest.approx(result["gd"] / result["bare_gd"])
    assert result["paper"] == 1.67 and result["threads"] == 1


def test_paper_table_covers_the_grid():
    assert sorted(PAPER_TABLE1) == list(TABLE1_SIZES)
    values = [v for row in PAPER_TABLE1.values() for v in row.values()]
    assert len(values) == 16 and min(values) == 1.33 and max(values) == 2.08


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        lsgd_gd_time_ratio(4, 4, steps=0)
