"""Percentages as the API reports them."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction


def percentage(part: int, whole: int) -> float:
    """part / whole x 100 rounded half-up to 2 decimals; 0.0 when whole is 0."""
    if whole == 0:
        return 0.0
    return float((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def seconds(milliseconds: Fraction) -> float:
    """Milliseconds as seconds, rounded half-up to 3 decimals (to the millisecond)."""
    whole = math.floor(milliseconds + Fraction(1, 2))
    return float(Decimal(whole) / 1000)
