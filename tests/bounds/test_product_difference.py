"""The product-difference inequality (eq. 25), with factors drawn directly by hypothesis."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import bounds
from tests.strategies import assert_holds_and_seek_tight_cases

weights = st.floats(0.0, 1.0, allow_subnormal=False)


@st.composite
def factor_pairs(draw):
    """n factors of sizes 1..5 for p and q, including sparse and deterministic ones."""
    n = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    p, q = [], []
    for size in sizes:
        for factors in (p, q):
            raw = np.array(draw(st.lists(weights, min_size=size, max_size=size)))
            assume(raw.sum() > 1e-6)
            factors.append(raw / raw.sum())
    return p, q


@given(factor_pairs())
def test_product_difference_inequality(pair):
    """sum_a |prod_i p_i(a_i) - prod_i q_i(a_i)| <= 2 * sum_i TV(p_i, q_i)   (eq. 25)."""
    check = bounds.product_difference(*pair)
    assert_holds_and_seek_tight_cases(check)


@given(factor_pairs())
def test_product_difference_is_exact_for_one_differing_factor(pair):
    """When only one factor differs the inequality is an equality: sum |p - q| = 2 TV(p_j, q_j)."""
    p, q = pair
    q_one = [q[0], *p[1:]]
    check = bounds.product_difference(p, q_one)
    assert np.isclose(check.lhs, check.rhs, rtol=1e-12, atol=1e-14)
