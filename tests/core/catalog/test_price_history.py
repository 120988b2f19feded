"""An instrument's daily price: its cheapest available, in-spec offer at each day's end."""

from __future__ import annotations

from gridgate.core.catalog.price_history import DailyPrice, average, daily_prices
from gridgate.core.times import DAY_US
from gridgate.storage.records import PricePoint

DAY = 20_000


def point(offer: str, day: int, hour: int, inp: int, out: int, *, up: bool = True) -> PricePoint:
    return PricePoint(
        offer_id=offer,
        instrument="text-prime",
        input_per_m=inp,
        output_per_m=out,
        available=up,
        created_us=day * DAY_US + hour * 3_600_000_000,
    )


def test_each_day_takes_the_cheapest_available_offer_at_its_end() -> None:
    points = [
        point("a", DAY, 1, 100, 400),
        point("b", DAY, 2, 80, 300),
        point("b", DAY + 1, 5, 500, 2000),  # b got pricier: a is the best from then on
        point("a", DAY + 2, 1, 100, 400, up=False),  # a disabled: b, pricey, is all there is
        point("b", DAY + 3, 1, 500, 2000, up=False),  # nothing serves
    ]
    prices = daily_prices(points, first_day=DAY - 1, last_day=DAY + 3, now_us=(DAY + 9) * DAY_US)
    assert prices == [
        DailyPrice(DAY - 1, None, None, None),
        DailyPrice(DAY, "b", 80, 300),
        DailyPrice(DAY + 1, "a", 100, 400),
        DailyPrice(DAY + 2, "b", 500, 2000),
        DailyPrice(DAY + 3, None, None, None),
    ]
    assert average(prices) == (227, 900)  # (80 + 100 + 500) / 3, rounded half up


def test_today_is_priced_as_of_now_and_out_of_spec_offers_do_not_count() -> None:
    points = [point("a", DAY, 1, 100, 400), point("cheap", DAY, 1, 1, 1)]
    now = DAY * DAY_US + 2 * 3_600_000_000
    later = point("a", DAY, 3, 50, 50)  # after now: not yet
    prices = daily_prices(
        [*points, later], first_day=DAY, last_day=DAY, now_us=now, qualifying={"a"}
    )
    assert prices == [DailyPrice(DAY, "a", 100, 400)]
    assert average([DailyPrice(DAY, None, None, None)]) is None
