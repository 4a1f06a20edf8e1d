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
