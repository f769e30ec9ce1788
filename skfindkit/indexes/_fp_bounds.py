"""Rounding-error bounds of float32 scores: what the exact paths may trust.

Every exact path in skfindkit scores all candidates in float32 (fast) and
then computes exact float64 distances for the few that can still be among the
``k`` nearest. Which ones "can still be" is decided by a *bound*, never by a
fixed count: a candidate is dropped only when its score, even with the
largest error float32 can have made, cannot reach the ``k``-th.

The bound is the classical one for inner products (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., eq. 3.5): for vectors of length
``n`` summed in **any** order, with or without fused multiply-adds (BLAS
kernels block and reorder freely),

    |fl(x . y) - x . y| <= gamma(n) * sum_i |x_i y_i| <= gamma(n) * |x| |y|,
    gamma(n) = n u / (1 - n u),  u = 2**-24 (float32's unit roundoff).

Rounding a float64 value ``v`` to float32 errs by at most ``u |v|`` (round to
nearest), and by at most :data:`TINY` in absolute terms where the result is
subnormal. Each module states which terms it adds on top.
"""

import numpy as np

__all__ = ["U32", "U64", "TINY", "gamma"]

#: Unit roundoff of float32 (half the distance from 1 to the next float32).
U32 = float(np.finfo(np.float32).eps) / 2
#: Unit roundoff of float64.
U64 = float(np.finfo(np.float64).eps) / 2
#: Absolute error allowance for float32 results in the subnormal range
#: (one product or sum there errs by at most half the smallest subnormal).
TINY = float(np.finfo(np.float32).smallest_subnormal)


def gamma(n, u=U32):
    """``n u / (1 - n u)``: the relative error bound of an ``n``-term float sum.

    Parameters
    ----------
    n : int
        Number of terms (products) summed.
    u : float, default=U32
        Unit roundoff of the arithmetic (:data:`U32` or :data:`U64`).

    Returns
    -------
    float
        The bound; ``inf`` when ``n u >= 1`` (no bound: the caller must not
        trust the sums at all).

    Examples
    --------
    >>> round(gamma(128) / U32, 3)
    128.001
    """
    nu = n * u
    return nu / (1.0 - nu) if nu < 1.0 else float("inf")
