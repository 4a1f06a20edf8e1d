"""What the pages explain is true: each text is built in core from the numbers it states, and held against what
the code computes (the blind-spot map, the race's cost model and chart, bits per image, the poetry windows)."""
import math
import re

import numpy as np
import pytest

from core.questions import q2, q3, q4, q5


# ------------------------------------------------------------------------------------------------ Q2: the blind spot
def reach_rule(layers, k, H, W, row, col):
    """The page's rule: with n = layers + 1 masked kxk layers and h = k//2, row `row` is seen left of `col`, and
    row - j (1 <= j <= n*h) from col - n*h to col + h*min(j, n)."""
    n, h = layers + 1, k // 2
    r, c = np.ogrid[:H, :W]
    j = row - r
    above = (j >= 1) & (j <= n * h) & (c >= col - n * h) & (c <= col + h * np.minimum(j, n))
    same = (j == 0) & (c >= col - n * h) & (c < col)
    return above | same


@pytest.mark.parametrize("layers,row,col", [(5, 12, 9), (1, 12, 9), (0, 19, 3), (2, 6, 18)])
def test_the_blind_spot_map_follows_the_stated_rule(layers, row, col):
    k, H, W = 7, 20, 20
    m = q2.receptive_map(layers, k, H, W, row, col)
    assert np.array_equal(m == 1, reach_rule(layers, k, H, W, row, col))        # seen: measured = the rule
    r, c = np.ogrid[:H, :W]
    wedge = (r < row) & (c > col + (row - r) * (k // 2))                        # right of c + j*(k//2), j rows up
    assert np.array_equal(m == 2, wedge)                                        # the blind spot is that wedge
    earlier = (np.arange(H * W) < row * W + col).reshape(H, W)
    assert np.array_equal(m == 4, earlier & ~(m == 1) & ~wedge)                 # the rest is out of reach of depth


def test_a_deep_enough_stack_sees_every_earlier_pixel_but_the_wedge():
    m = q2.receptive_map(5, 7, 20, 20, 12, 9)     # 6 layers reach 18 rows up and 18 columns left: all of it
    assert not (m == 4).any() and (m == 2).any() and m[11, 12] == 1 and m[11, 13] == 2 and m[10, 15] == 1


def test_the_blind_spot_words_match_the_map():
    text = q2.BLIND_SPOT
    assert "up and to the left" not in text and "c + j·(k//2)" in text and "rows above its centre in full" in text
    words = q2.field_text(5, 7, 12, 9)     # the page's default settings, in numbers
    assert "6 masked 7×7 layers (1 type A + 5 type B)" in words and "k//2 = 3" in words
    assert "9 − 18 to 9 + 3·min(j, 6)" in words and "Right of 9 + 3·j" in words


# ------------------------------------------------------------------------------------------------ Q3: the race
def test_the_race_text_gives_the_cost_model_and_no_flat_line():
    text = q3.RACE_TEXT
    assert "stays flat" not in text and "O(L(t·d² + t²·d))" in text and "O(L(d² + t·d))" in text
    assert "attends over the t stored keys" in text and "overhead, not the algorithm" in text


def test_the_stated_ratio_of_the_totals_holds():
    """'Summed over the T steps the operations' ratio lies between T/2 and 2T/3' (per layer, constants aside)."""
    for T in (400, 784):
        for d in (16, 128, 4096):
            t = np.arange(1, T + 1, dtype=float)
            ratio = (t * d * d + t * t * d).sum() / (d * d + t * d).sum()
            assert T / 2 - 1 <= ratio <= 2 * T / 3 + 1, (T, d, ratio)


def test_the_log_scale_label_carries_the_measured_ratio_not_a_fixed_one():
    assert "93.5x" in q3.log_scale_label(93.51) and "50x" not in q3.log_scale_label(93.51)
    assert not re.search(r"\d", q3.log_scale_label(None))                  # while the race runs: no number


def test_race_chart_log_ticks_read_as_full_values():
    times = {"uncached": np.linspace(2e-3, 0.09, 784), "cached": np.full(784, 4e-4)}   # seconds per step
    fig = q3.race_figure(times, 784, log_y=True)
    y = fig.layout.yaxis
    assert y.type == "log" and y.title.text == "ms per step"
    assert list(y.ticktext) == ["0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50", "100"]
    assert [float(t) for t in y.ticktext] == list(y.tickvals)           # each label is its tick's full value
    wide = q3.log_ticks([0.03, 800])                                     # over 4+ decades: one per decade
    assert wide == ([0.01, 0.1, 1.0, 10.0, 100.0, 1000.0], ["0.01", "0.1", "1", "10", "100", "1000"])
    assert [tr.name for tr in fig.data] == [f"uncached ({times['uncached'].sum():.2f} s)",
                                            f"cached ({times['cached'].sum():.2f} s)"]
    assert q3.race_figure(times, 784, log_y=False).layout.yaxis.tickvals is None


def test_the_race_tab_names_its_own_button_when_it_has_no_race():
    assert q3.RACE_BUTTON in q3.RACE_EMPTY and "preset" not in q3.RACE_EMPTY and "Train" not in q3.RACE_EMPTY


# ------------------------------------------------------------------------------------------------ Q4: bits per image
def test_bits_text_names_the_upper_bound_and_the_prior_cost():
    ref = q4.TOKEN_TRANSFORMER.reference["mnist-colored"]
    assert ref == 3.083 and round(q4.prior_bits(ref)) == round(49 * 3.083 / math.log(2)) == 218
    text = q4.bits_text(ref)
    assert "49·log₂K bits per image (490 for K = 1024): an upper bound" in text
    assert "49·log₂(perplexity)" in text and "49·loss/ln 2" in text and "3.083 nats/token is ≈ 218 bits" in text


def test_usage_bits_is_the_entropy_of_the_code_histogram():
    ppl, bits = q4.usage_bits([10, 10, 10, 10, 0, 0])
    assert ppl == pytest.approx(4) and bits == pytest.approx(49 * 2)
    assert q4.usage_bits([5])[1] == 0 and q4.fixed_bits(1024) == 490


def test_the_rate_distortion_chart_says_it_edits_one_tokenizer():
    rows = [{"k": k, "bits": q4.fixed_bits(k), "mse": 1 / k} for k in (1, 4, 1024)]
    fig = q4.rd_figure(rows, rows[1], rows[2], "k-means")
    assert fig.layout.title.text == "edits of one tokenizer's codebook (its decoder trained for K = 1024)"
    assert "fixed-length" in fig.layout.xaxis.title.text
    caption = q4.rd_caption(1024)
    assert "not a tokenizer trained at each K" in caption and "upper bound" in caption


# ------------------------------------------------------------------------------------------------ Q5: the poet
def test_the_poetry_text_takes_the_context_and_compares_loosely():
    text = q5.intro(64, 10, course_set=False, n_poems=486)
    assert "windows of 64 tokens" in text and "128" not in text
    assert "course's own poetry set reached 1.60–2.13 nats/char" in text and "486 poems" in text
    assert "rough guide" in text
    on_course_set = q5.intro(128, 10, course_set=True)
    assert "rough guide" not in on_course_set and "windows of 128 tokens" in on_course_set
    assert q5.against_students(1.75, False).startswith("inside the students' 1.60–2.13")
    assert q5.against_students(2.5, True) == "above the students' 1.60–2.13"
    assert q5.against_students(1.2, False).startswith("below")
