"""The feature spec: shape, robustness, hand-computed windows, bounds and separability."""

import itertools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.features import (
    CARD_HISTORY_MAX,
    FEATURE_NAMES,
    FEATURE_SPEC_VERSION,
    MCC_GROUPS,
    N_FEATURES,
    STATE_TTL_S,
    FeatureExtractor,
    haversine_km,
    mcc_group,
)
from edge_agent.protocol import Transaction
from edge_agent.simulator import FraudType, SimulatorConfig, generate

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
INDEX = {name: position for position, name in enumerate(FEATURE_NAMES)}
PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.006)
_ids = itertools.count()


def make_tx(
    seconds: float = 0.0,
    *,
    card: str = "card-a",
    terminal: str = "term-1",
    amount: float = 20.0,
    currency: str = "EUR",
    mcc: str = "5411",
    location: tuple[float, float] = PARIS,
) -> Transaction:
    return Transaction(
        transaction_id=f"tx-{next(_ids)}",
        store_id="store-1",
        terminal_id=terminal,
        card_token=card,
        amount=amount,
        currency=currency,
        merchant_category=mcc,
        timestamp=T0 + timedelta(seconds=seconds),
        latitude=location[0],
        longitude=location[1],
    )


def value(row: npt.NDArray[np.float32], name: str) -> float:
    return float(row[INDEX[name]])


def test_spec_constants_are_consistent() -> None:
    assert isinstance(FEATURE_SPEC_VERSION, int)
    assert len(FEATURE_NAMES) == N_FEATURES == len(set(FEATURE_NAMES))
    assert [name for name in FEATURE_NAMES if name.startswith("mcc_")] == [
        f"mcc_{group}" for group in MCC_GROUPS
    ]


def test_adversarial_inputs_give_finite_float32_vectors() -> None:
    extractor = FeatureExtractor()
    sequence = [
        make_tx(0),  # first-seen card
        make_tx(0),  # same timestamp twice
        make_tx(-3600),  # an hour out of order
        make_tx(5, amount=1e308),
        make_tx(6, amount=1e-300),
        make_tx(7, amount=5e-324, currency="JPY"),
        make_tx(8, location=(90.0, 180.0)),
        make_tx(8, location=(-90.0, -180.0)),  # pole to pole, same instant
        make_tx(9, location=(0.0, 179.9999)),
        make_tx(10, location=(0.0, -179.9999)),  # across the antimeridian
        make_tx(11, currency="XXX", mcc="0000"),  # unknown currency and category
        make_tx(12, card="card-b", amount=1e308, location=(-90.0, 180.0)),
    ]
    rows = [extractor.transform(tx) for tx in sequence]

    for row in rows:
        assert row.shape == (N_FEATURES,)
        assert row.dtype == np.float32
        assert np.isfinite(row).all()
    assert value(rows[0], "card_new") == 1.0
    assert value(rows[1], "card_new") == 0.0


def test_unvalidated_transactions_still_give_finite_features() -> None:
    broken = Transaction.model_construct(
        transaction_id="tx-broken",
        store_id="store-1",
        terminal_id="term-1",
        card_token="card-a",
        amount=math.nan,
        currency="EUR",
        merchant_category="5411",
        timestamp=T0,
        latitude=math.inf,
        longitude=-math.inf,
    )
    extractor = FeatureExtractor()
    extractor.transform(make_tx(-60))

    assert np.isfinite(extractor.transform(broken)).all()


def test_out_of_order_transaction_never_yields_negative_deltas() -> None:
    extractor = FeatureExtractor()
    extractor.transform(make_tx(1000))
    late = extractor.transform(make_tx(400))
    after = extractor.transform(make_tx(1010))

    assert value(late, "card_seconds_since_last_log") == 0.0
    assert value(late, "card_tx_1m") == 1.0  # counted as if at the card's latest time
    assert value(after, "card_seconds_since_last_log") == pytest.approx(math.log1p(10.0))
    assert extractor.state_size().late_transactions == 1


def test_card_velocity_windows_match_hand_counts() -> None:
    extractor = FeatureExtractor()
    times = [0, 30, 50, 90, 700, 3650]
    amounts = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    terminals = ["t1", "t2", "t1", "t3", "t4", "t5"]
    rows = [
        extractor.transform(make_tx(t, amount=a, terminal=k))
        for t, a, k in zip(times, amounts, terminals, strict=True)
    ]
    windows = ("card_tx_1m", "card_tx_10m", "card_tx_1h", "card_tx_24h")
    counts = [tuple(value(row, name) for name in windows) for row in rows]

    assert counts == [
        (0, 0, 0, 0),
        (1, 1, 1, 1),
        (2, 2, 2, 2),
        (1, 3, 3, 3),  # the first use is exactly 60 s old: outside the minute
        (0, 0, 4, 4),
        (0, 0, 2, 5),  # ages 3650, 3620, 3600 fall out of the hour; 3560 and 2950 stay
    ]
    assert value(rows[3], "card_terminals_1h") == 2.0  # t1, t2
    assert value(rows[5], "card_terminals_1h") == 2.0  # t3, t4
    assert value(rows[5], "card_amount_sum_1h_log") == pytest.approx(math.log1p(90.0), rel=1e-6)


def test_card_state_expires_after_the_longest_window() -> None:
    extractor = FeatureExtractor()
    extractor.transform(make_tx(0))
    kept = extractor.transform(make_tx(STATE_TTL_S - 1))
    expired = extractor.transform(make_tx(2 * STATE_TTL_S + 1))

    assert value(kept, "card_new") == 0.0
    assert value(kept, "card_tx_24h") == 1.0
    assert value(expired, "card_new") == 1.0
    assert value(expired, "card_tx_24h") == 0.0


def test_card_history_is_bounded() -> None:
    extractor = FeatureExtractor()
    rows = [extractor.transform(make_tx(i)) for i in range(CARD_HISTORY_MAX + 20)]

    assert value(rows[-1], "card_tx_24h") == CARD_HISTORY_MAX
    assert value(rows[-1], "card_tx_1h") == CARD_HISTORY_MAX


def test_terminal_windows_count_all_and_small_amounts() -> None:
    extractor = FeatureExtractor()
    plan = [(0, 1.0), (10, 2.0), (20, 80.0), (70, 1.5), (500, 3.0), (650, 2.5)]
    rows = [
        extractor.transform(make_tx(t, card=f"card-{i}", amount=a)) for i, (t, a) in enumerate(plan)
    ]
    last_minute = [value(row, "terminal_tx_1m") for row in rows]
    small_10m = [value(row, "terminal_small_tx_10m") for row in rows]

    assert last_minute == [0, 1, 2, 1, 0, 0]
    assert small_10m == [0, 1, 2, 2, 3, 2]  # at 650 s the payments at 0 and 10 s have aged out


def test_impossible_travel_gives_high_speed() -> None:
    extractor = FeatureExtractor()
    extractor.transform(make_tx(0, location=PARIS))
    jump = extractor.transform(make_tx(600, location=NEW_YORK))
    extractor.transform(make_tx(0, card="card-local", location=PARIS))
    stroll = extractor.transform(make_tx(1800, card="card-local", location=(48.87, 2.33)))

    km = haversine_km(*PARIS, *NEW_YORK)
    assert 5800 < km < 5900
    assert value(jump, "card_distance_km_log") == pytest.approx(math.log1p(km), rel=1e-5)
    assert value(jump, "card_speed_kmh_log") == pytest.approx(math.log1p(km * 6), rel=1e-5)
    assert value(stroll, "card_speed_kmh_log") < math.log1p(10.0)


def test_simultaneous_far_apart_uses_have_finite_high_speed() -> None:
    extractor = FeatureExtractor()
    extractor.transform(make_tx(0, location=PARIS))
    row = extractor.transform(make_tx(0, location=NEW_YORK))

    assert math.isfinite(value(row, "card_speed_kmh_log"))
    assert value(row, "card_speed_kmh_log") > math.log1p(100_000.0)


def test_distance_wraps_around_the_antimeridian() -> None:
    extractor = FeatureExtractor()
    extractor.transform(make_tx(0, location=(0.0, 179.9)))
    row = extractor.transform(make_tx(3600, location=(0.0, -179.9)))

    assert value(row, "card_distance_km_log") == pytest.approx(math.log1p(22.24), rel=1e-3)


def test_amount_far_above_habit_stands_out() -> None:
    extractor = FeatureExtractor()
    for i in range(12):
        extractor.transform(make_tx(i * 600, amount=18.0 + (i % 3) * 2))
    usual = extractor.transform(make_tx(12 * 600, amount=20.0))
    spike = extractor.transform(make_tx(13 * 600, amount=2000.0))

    assert abs(value(usual, "card_amount_zscore")) < 1.0
    assert value(spike, "card_amount_zscore") > 5.0
    assert value(spike, "card_amount_log_ratio") == pytest.approx(math.log(100.0), abs=0.1)


def test_new_merchant_group_and_foreign_currency_flags() -> None:
    extractor = FeatureExtractor()
    first = extractor.transform(make_tx(0, mcc="5411"))
    grocery_again = extractor.transform(make_tx(60, mcc="5499"))
    electronics = extractor.transform(make_tx(120, mcc="5732"))
    electronics_again = extractor.transform(make_tx(180, mcc="5732"))
    dollars = extractor.transform(make_tx(240, card="card-b", currency="USD"))

    assert mcc_group("5499") == mcc_group("5411") == "grocery"
    assert value(first, "card_new_mcc_group") == 0.0  # unknown card: no claim
    assert value(grocery_again, "card_new_mcc_group") == 0.0
    assert value(electronics, "card_new_mcc_group") == 1.0
    assert value(electronics, "mcc_electronics") == 1.0
    assert value(electronics_again, "card_new_mcc_group") == 0.0
    assert value(first, "foreign_currency") == 0.0
    assert value(dollars, "foreign_currency") == 1.0


def test_time_features_use_local_solar_time() -> None:
    extractor = FeatureExtractor()
    london_noon = extractor.transform(make_tx(0, location=(51.5, 0.0)))
    # 06:00 UTC at 90 degrees east is local noon as well.
    east_noon = extractor.transform(make_tx(-6 * 3600, card="card-b", location=(20.0, 90.0)))

    for row in (london_noon, east_noon):
        assert value(row, "hour_sin") == pytest.approx(0.0, abs=1e-6)
        assert value(row, "hour_cos") == pytest.approx(-1.0, abs=1e-6)
        assert value(row, "dow_sin") == pytest.approx(0.0, abs=1e-6)  # Monday
        assert value(row, "dow_cos") == pytest.approx(1.0, abs=1e-6)


def test_transform_many_matches_one_by_one() -> None:
    sequence = [make_tx(i * 7.5, card=f"card-{i % 3}", amount=5.0 + i) for i in range(40)]
    extractor = FeatureExtractor()
    one_by_one = np.stack([extractor.transform(tx) for tx in sequence])
    batch = FeatureExtractor().transform_many(sequence)

    assert batch.shape == (40, N_FEATURES)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, one_by_one)
    assert FeatureExtractor().transform_many([]).shape == (0, N_FEATURES)


def test_lru_keeps_state_within_bounds_and_evicts_least_recent() -> None:
    extractor = FeatureExtractor(max_cards=10, max_terminals=5)
    for i in range(100):
        extractor.transform(make_tx(i, card="card-kept", terminal="term-kept"))
        extractor.transform(make_tx(i, card=f"card-{i}", terminal=f"term-{i}"))
        stats = extractor.state_size()
        assert stats.cards <= 10
        assert stats.terminals <= 5
    row = extractor.transform(make_tx(100, card="card-kept", terminal="term-kept"))
    evicted = extractor.transform(make_tx(101, card="card-0", terminal="term-0"))
    stats = extractor.state_size()

    assert value(row, "card_new") == 0.0
    assert value(row, "card_tx_24h") == CARD_HISTORY_MAX
    assert value(evicted, "card_new") == 1.0
    assert stats.evicted_cards >= 90
    assert stats.evicted_terminals >= 95


def test_expired_state_is_dropped() -> None:
    lazy = FeatureExtractor()
    swept = FeatureExtractor()
    for extractor in (lazy, swept):
        for i in range(50):
            extractor.transform(make_tx(i, card=f"card-{i}", terminal=f"term-{i}"))
    for i in range(200):
        lazy.transform(make_tx(STATE_TTL_S + 100 + i, card="card-late", terminal="term-late"))
    dropped = swept.expire(T0 + timedelta(seconds=STATE_TTL_S + 100))

    assert lazy.state_size().cards == 1
    assert lazy.state_size().terminals == 1
    assert dropped == 100
    assert swept.state_size().cards == 0
    assert swept.state_size().terminals == 0


def test_simulated_fraud_is_separable_on_the_relevant_feature() -> None:
    config = SimulatorConfig(
        seed=21, n_cards=3000, n_stores=150, fraud_rate=0.06, transactions_per_second=1.0
    )
    transactions, labels = generate(60_000, config)
    features = FeatureExtractor().transform_many(transactions)
    kinds = np.array([label.fraud_type for label in labels], dtype=object)
    normal = kinds == None  # noqa: E711 - element-wise comparison on an object array

    def effect(kind: FraudType, name: str) -> float:
        """Standardised mean difference against normal traffic."""
        column = features[:, INDEX[name]].astype(np.float64)
        return float((column[kinds == kind].mean() - column[normal].mean()) / column[normal].std())

    # Busy bakeries give normal traffic a long tail here, so compare robustly.
    small = features[:, INDEX["terminal_small_tx_10m"]]
    testing = kinds == FraudType.CARD_TESTING
    assert np.median(small[testing]) >= 5
    assert np.median(small[normal]) <= 1
    assert (small[testing] >= 3).mean() > max(0.6, 3 * (small[normal] >= 3).mean())
    assert effect(FraudType.CARD_TESTING, "amount_eur_log") < -1.2
    assert effect(FraudType.IMPOSSIBLE_TRAVEL, "card_speed_kmh_log") > 2.0
    assert effect(FraudType.HABIT_BREAK, "card_amount_zscore") > 2.0
    assert effect(FraudType.ODD_HOUR_HIGH_AMOUNT, "hour_cos") > 1.2
