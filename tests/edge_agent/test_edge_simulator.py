"""The POS traffic simulator: reproducible, ordered, realistic, with labels kept apart."""

import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from statistics import correlation, mean, median

import pytest
from pydantic import ValidationError

from edge_agent.features import haversine_km, mcc_group, to_eur
from edge_agent.protocol import Transaction
from edge_agent.simulator import (
    BASELINE_FRAUD_TYPES,
    City,
    FraudType,
    Label,
    Region,
    Simulator,
    SimulatorConfig,
    generate,
)

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
SMALL = SimulatorConfig(seed=4, n_cards=1500, n_stores=120, fraud_rate=0.03)


@cache
def two_days_with_drift() -> tuple[tuple[Transaction, ...], tuple[Label, ...]]:
    """Two simulated days, drift after the first: shared by the rate and drift tests."""
    config = SimulatorConfig(
        seed=9,
        n_cards=4000,
        n_stores=200,
        transactions_per_second=1.0,
        fraud_rate=0.04,
        drift_at=START + timedelta(days=1),
        drift_rate=0.02,
    )
    simulator = Simulator(config)
    transactions = tuple(simulator.stream(until=START + timedelta(days=2)))
    return transactions, tuple(simulator.labels.drain())


def test_same_seed_gives_identical_transactions_and_labels() -> None:
    first, first_labels = generate(3000, SMALL)
    second, second_labels = generate(3000, SMALL)
    other, _ = generate(3000, SMALL.model_copy(update={"seed": 5}))

    assert first == second
    assert first_labels == second_labels
    assert [tx.card_token for tx in other] != [tx.card_token for tx in first]


def test_stream_continues_where_it_stopped() -> None:
    simulator = Simulator(SMALL)
    pieces = simulator.generate(700) + simulator.generate(1300)
    whole, _ = generate(2000, SMALL)

    assert pieces == whole
    assert simulator.emitted == 2000


def test_transactions_are_ordered_unique_and_valid() -> None:
    transactions, _ = generate(5000, SMALL)
    currencies = {region.name: region.currency for region in SMALL.regions}

    assert all(a.timestamp <= b.timestamp for a, b in pairwise(transactions))
    assert len({tx.transaction_id for tx in transactions}) == len(transactions)
    assert transactions[0].timestamp >= SMALL.start
    for tx in transactions:
        assert Transaction.model_validate_json(tx.model_dump_json()) == tx
        assert tx.timestamp.utcoffset() == timedelta(0)
        assert tx.currency in currencies.values()
        assert tx.terminal_id.startswith(tx.store_id)


def test_stream_stops_before_until() -> None:
    until = START + timedelta(minutes=30)
    transactions = list(Simulator(SMALL).stream(until=until))

    assert transactions
    assert max(tx.timestamp for tx in transactions) < until
    assert min(tx.timestamp for tx in transactions) >= START


def test_labels_are_apart_and_released_after_a_delay() -> None:
    config = SMALL.model_copy(
        update={
            "chargeback_delay_min": timedelta(days=2),
            "chargeback_delay_max": timedelta(days=5),
            "legit_label_delay": timedelta(days=6),
        }
    )
    simulator = Simulator(config)
    transactions = simulator.generate(4000)
    first, last = transactions[0].timestamp, transactions[-1].timestamp

    assert last - first < timedelta(days=1)
    assert not {"label", "is_fraud", "fraud_type"} & set(Transaction.model_fields)
    assert simulator.labels.released(first + timedelta(days=2) - timedelta(seconds=1)) == []
    fraud = simulator.labels.released(last + timedelta(days=5, seconds=1))
    assert fraud
    assert all(label.is_fraud for label in fraud)
    assert simulator.labels.released(last + timedelta(days=5, seconds=1)) == []  # handed out once
    rest = simulator.labels.released(last + timedelta(days=7))
    assert all(not label.is_fraud for label in rest)
    assert len(fraud) + len(rest) == len(transactions)
    assert {label.transaction_id for label in fraud + rest} == {
        tx.transaction_id for tx in transactions
    }
    for label in fraud:
        delay = label.available_at - label.timestamp
        assert timedelta(days=2) <= delay <= timedelta(days=5)
    assert all(label.available_at - label.timestamp == timedelta(days=6) for label in rest)


def test_each_fraud_type_appears_at_roughly_the_configured_rate() -> None:
    transactions, labels = two_days_with_drift()
    baseline_share = Counter(label.fraud_type for label in labels)
    per_type = 0.04 / len(BASELINE_FRAUD_TYPES)

    assert len(transactions) > 150_000
    for kind in BASELINE_FRAUD_TYPES:
        assert baseline_share[kind] / len(labels) == pytest.approx(per_type, rel=0.3), kind


def test_drift_pattern_is_absent_before_drift_at_and_present_after() -> None:
    transactions, labels = two_days_with_drift()
    drift_at = START + timedelta(days=1)
    shifted = [
        (tx, label)
        for tx, label in zip(transactions, labels, strict=True)
        if label.fraud_type is FraudType.MERCHANT_SHIFT
    ]
    after = sum(tx.timestamp >= drift_at for tx in transactions)

    assert shifted
    assert all(tx.timestamp >= drift_at for tx, _ in shifted)
    assert len(shifted) / after == pytest.approx(0.02, rel=0.3)
    assert all(mcc_group(tx.merchant_category) == "electronics" for tx, _ in shifted)


@pytest.mark.parametrize(
    ("delay", "first_within"),
    [
        ((timedelta(seconds=10), timedelta(seconds=60)), timedelta(minutes=3)),
        (None, timedelta(hours=2)),
    ],
)
def test_the_drift_pattern_starts_after_its_delay(
    delay: tuple[timedelta, timedelta] | None, first_within: timedelta
) -> None:
    drift_at = START + timedelta(hours=12)
    config = SimulatorConfig(
        seed=3, transactions_per_second=2.0, n_cards=4000, drift_at=drift_at, drift_rate=0.1
    )
    if delay is not None:
        config = config.model_copy(
            update={"drift_delay_min": delay[0], "drift_delay_max": delay[1]}
        )
    simulator = Simulator(config)
    transactions = list(simulator.stream(until=drift_at + first_within))
    kinds = {label.transaction_id: label.fraud_type for label in simulator.labels.drain()}
    shifted = [
        tx.timestamp
        for tx in transactions
        if kinds.get(tx.transaction_id) is FraudType.MERCHANT_SHIFT
    ]
    least = delay[0] if delay is not None else config.drift_delay_min
    assert shifted, "the new pattern shows within its delay"
    assert min(shifted) >= drift_at + least


def test_merchant_shift_hits_a_group_the_card_never_used_at_ordinary_amounts() -> None:
    transactions, labels = two_days_with_drift()
    groups_used: defaultdict[str, set[str]] = defaultdict(set)
    shifted_cards: set[str] = set()
    first_uses = 0
    first_uses_in_new_group = 0
    shifted_eur: list[float] = []
    legit_electronics_eur: list[float] = []
    for tx, label in zip(transactions, labels, strict=True):
        group = mcc_group(tx.merchant_category)
        if label.fraud_type is FraudType.MERCHANT_SHIFT:
            shifted_eur.append(to_eur(tx.amount, tx.currency))
            if tx.card_token not in shifted_cards:
                shifted_cards.add(tx.card_token)
                first_uses += 1
                first_uses_in_new_group += group not in groups_used[tx.card_token]
        elif label.fraud_type is None:
            groups_used[tx.card_token].add(group)
            if group == "electronics":
                legit_electronics_eur.append(to_eur(tx.amount, tx.currency))

    assert first_uses > 50
    # A legitimate visit can slip in between the decision and the fraud itself.
    assert first_uses_in_new_group / first_uses > 0.95
    assert 0.5 < median(shifted_eur) / median(legit_electronics_eur) < 2.0


def test_no_drift_pattern_without_drift_at() -> None:
    _, labels = generate(20_000, SMALL)

    assert FraudType.MERCHANT_SHIFT not in {label.fraud_type for label in labels}


def test_fraud_patterns_look_like_their_names() -> None:
    transactions, labels = two_days_with_drift()
    last_seen: dict[str, Transaction] = {}
    card_testing_eur: list[float] = []
    travel_checked = 0
    travel_far = 0
    for tx, label in zip(transactions, labels, strict=True):
        if label.fraud_type is FraudType.CARD_TESTING:
            card_testing_eur.append(to_eur(tx.amount, tx.currency))
        elif label.fraud_type is FraudType.IMPOSSIBLE_TRAVEL:
            previous = last_seen.get(tx.card_token)
            if previous is not None and previous.store_id != tx.store_id:
                travel_checked += 1
                km = haversine_km(previous.latitude, previous.longitude, tx.latitude, tx.longitude)
                minutes = (tx.timestamp - previous.timestamp).total_seconds() / 60
                travel_far += km > 900 and minutes < 60
        last_seen[tx.card_token] = tx

    assert max(card_testing_eur) < 3.1
    assert travel_checked > 100
    assert travel_far / travel_checked > 0.9


def test_odd_hour_fraud_happens_in_the_small_hours() -> None:
    transactions, labels = two_days_with_drift()
    offsets = {
        (city.latitude, city.longitude): city.utc_offset_hours
        for region in SimulatorConfig().regions
        for city in region.cities
    }
    hours = []
    for tx, label in zip(transactions, labels, strict=True):
        if label.fraud_type is FraudType.ODD_HOUR_HIGH_AMOUNT:
            offset = min(
                offsets.items(),
                key=lambda item: abs(item[0][0] - tx.latitude) + abs(item[0][1] - tx.longitude),
            )[1]
            hours.append((tx.timestamp + timedelta(hours=offset)).hour)

    assert hours
    assert sum(1 <= hour <= 5 for hour in hours) / len(hours) > 0.9


def test_daily_and_weekly_rhythm() -> None:
    paris = Region(
        name="FR",
        currency="EUR",
        cities=(City(name="Paris", latitude=48.8566, longitude=2.3522, utc_offset_hours=1),),
    )
    config = SimulatorConfig(
        seed=2, n_cards=500, n_stores=40, regions=(paris,), transactions_per_second=0.1
    )
    transactions = list(Simulator(config).stream(until=START + timedelta(days=7)))
    local = [tx.timestamp + timedelta(hours=1) for tx in transactions]
    by_hour = Counter(t.hour for t in local)
    by_day = Counter(t.weekday() for t in local)

    assert by_hour[12] > 5 * by_hour[3]
    assert by_hour[19] > 3 * by_hour[4]
    assert by_day[5] > 1.3 * by_day[6]  # Saturday busier than Sunday
    assert {tx.currency for tx in transactions} == {"EUR"}


def test_amounts_follow_card_habits_and_currency() -> None:
    transactions, labels = generate(30_000, SMALL)
    by_card: defaultdict[str, list[float]] = defaultdict(list)
    for tx, label in zip(transactions, labels, strict=True):
        if label.fraud_type is None:
            by_card[tx.card_token].append(math.log(to_eur(tx.amount, tx.currency)))
    regulars = [amounts for amounts in by_card.values() if len(amounts) >= 10]
    even_halves = [mean(amounts[0::2]) for amounts in regulars]
    odd_halves = [mean(amounts[1::2]) for amounts in regulars]
    jpy = [tx.amount for tx in transactions if tx.currency == "JPY"]
    eur = [tx.amount for tx in transactions if tx.currency == "EUR"]

    assert len(regulars) > 100
    assert correlation(even_halves, odd_halves) > 0.25  # a card's habit persists
    assert jpy
    assert all(amount == int(amount) for amount in jpy)
    assert 0.5 < median(to_eur(amount, "JPY") for amount in jpy) / median(eur) < 2.0


@pytest.mark.parametrize(
    "update",
    [
        {"fraud_mix": {FraudType.MERCHANT_SHIFT: 1.0}},
        {"fraud_mix": {FraudType.CARD_TESTING: 0.0}},
        {"drift_mcc_group": "spaceships"},
        {"fraud_rate": 0.3, "drift_rate": 0.3},
        {"chargeback_delay_min": timedelta(days=3), "chargeback_delay_max": timedelta(days=1)},
        {"drift_delay_min": timedelta(hours=1), "drift_delay_max": timedelta(minutes=1)},
        {"start": datetime(2026, 1, 5)},  # noqa: DTZ001 - a naive start must be refused
    ],
)
def test_config_refuses_inconsistent_settings(update: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SimulatorConfig(**update)
