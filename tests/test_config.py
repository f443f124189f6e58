import logging
import math

import pytest

import engine as bk


def test_defaults_match_semantics_section_1():
    bk.reset_config()
    c = bk.get_config()
    assert (c.CC_SCHEDULE_AWAIT_MINUTES, c.CC_AVG_PRICE_CANDLES_COUNT, c.CC_PERCENT_FEE, c.CC_PERCENT_SLIPPAGE) == (4320, 5, 0.1, 0.1)
    assert (c.CC_MIN_TAKEPROFIT_DISTANCE_PERCENT, c.CC_MIN_STOPLOSS_DISTANCE_PERCENT, c.CC_MAX_STOPLOSS_DISTANCE_PERCENT) == (0.2, 0.1, 10)
    assert (c.CC_MAX_SIGNAL_LIFETIME_MINUTES, c.CC_MAX_SIGNAL_GENERATION_SECONDS) == (43200, 180)
    assert (c.CC_GET_CANDLES_RETRY_COUNT, c.CC_GET_CANDLES_RETRY_DELAY_MS, c.CC_MAX_CANDLES_PER_REQUEST) == (3, 5000, 1000)
    assert (c.CC_GET_CANDLES_PRICE_ANOMALY_THRESHOLD_FACTOR, c.CC_GET_CANDLES_MIN_CANDLES_FOR_MEDIAN) == (1000, 5)
    assert c.CC_PRICE_TRIGGER == "vwap"


def test_set_config_merges_and_get_config_is_frozen():
    bk.set_config(CC_PERCENT_FEE=0.05)
    bk.set_config(CC_PERCENT_SLIPPAGE=0.02)
    c = bk.get_config()
    assert (c.CC_PERCENT_FEE, c.CC_PERCENT_SLIPPAGE) == (0.05, 0.02)
    with pytest.raises(AttributeError):
        c.CC_PERCENT_FEE = 1  # type: ignore[misc]


def test_every_problem_listed_and_previous_config_kept():
    before = bk.get_config()
    with pytest.raises(ValueError) as err:
        bk.set_config(CC_PERCENT_FEE=-1, CC_SCHEDULE_AWAIT_MINUTES=1.5, CC_GET_CANDLES_RETRY_COUNT=-2,
                      CC_MIN_STOPLOSS_DISTANCE_PERCENT=20, CC_PRICE_TRIGGER="close")
    text = str(err.value)
    for needle in ("1. ", "2. ", "3. ", "4. ", "5. ", "CC_PERCENT_FEE", "CC_SCHEDULE_AWAIT_MINUTES",
                   "CC_GET_CANDLES_RETRY_COUNT", "CC_MIN_STOPLOSS_DISTANCE_PERCENT", "CC_PRICE_TRIGGER"):
        assert needle in text
    assert bk.get_config() == before


@pytest.mark.parametrize("key, value", [
    ("CC_PERCENT_FEE", math.nan), ("CC_PERCENT_SLIPPAGE", math.inf), ("CC_MAX_STOPLOSS_DISTANCE_PERCENT", -1),
    ("CC_AVG_PRICE_CANDLES_COUNT", 0), ("CC_MAX_SIGNAL_LIFETIME_MINUTES", -5), ("CC_GET_CANDLES_RETRY_DELAY_MS", 1.5),
    ("CC_MAX_CANDLES_PER_REQUEST", 0), ("CC_PERCENT_FEE", "0.1"),
])
def test_invalid_values_rejected(key, value):
    with pytest.raises(ValueError, match=key):
        bk.set_config(**{key: value})


def test_lifetime_may_be_infinite_and_unknown_keys_rejected():
    bk.set_config(CC_MAX_SIGNAL_LIFETIME_MINUTES=math.inf)
    assert bk.get_config().CC_MAX_SIGNAL_LIFETIME_MINUTES == math.inf
    with pytest.raises(ValueError, match="unknown key"):
        bk.set_config(CC_FEE=0.1)


def test_min_take_profit_below_round_trip_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="btk"):
        bk.set_config(CC_MIN_TAKEPROFIT_DISTANCE_PERCENT=0.3)   # round trip is 0.4 %
    assert "round-trip" in caplog.text
    assert bk.get_config().CC_MIN_TAKEPROFIT_DISTANCE_PERCENT == 0.3


def test_unsafe_skips_validation():
    bk.set_config(CC_PERCENT_FEE=-1, unsafe=True)
    assert bk.get_config().CC_PERCENT_FEE == -1
