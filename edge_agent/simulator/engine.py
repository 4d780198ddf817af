"""Seeded generator of point-of-sale traffic with labelled fraud, in timestamp order.

Time advances one simulated minute at a time. Each minute every city draws a
Poisson number of ordinary payments from its local daily rhythm; each
ordinary payment may trigger a fraud event, whose transactions are scheduled
at or after it (a card-testing burst runs over several minutes). A heap
orders everything, and a transaction is emitted only once nothing earlier
can still be scheduled, so the stream is sorted by timestamp. Transaction ids
and labels are assigned at emission, so ids follow stream order and reveal
nothing about fraud.

Fraud rates are shares of emitted transactions: each ordinary payment
triggers an event of kind k with probability
``rate_k / normal_share / mean_length_k``. Odd-hour fraud only triggers
between 01:00 and 05:00 local time, with its probability scaled up by the
share of traffic at those hours so that the overall rate holds.
"""

import heapq
import logging
import math
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import TypeVar

from edge_agent.features import MCC_GROUPS
from edge_agent.protocol.transaction import Transaction
from edge_agent.simulator.config import BASELINE_FRAUD_TYPES, FraudType, SimulatorConfig
from edge_agent.simulator.labels import Label, LabelLedger
from edge_agent.simulator.world import (
    MEAN_RHYTHM,
    NIGHT_HOURS,
    NIGHT_SHARE,
    Card,
    CityInfo,
    Store,
    World,
    from_eur,
    rhythm,
)

logger = logging.getLogger(__name__)

# Mean number of transactions per fraud event, used to turn rates into triggers.
MEAN_EVENT_LENGTH: dict[FraudType, float] = {
    FraudType.CARD_TESTING: 14.0,
    FraudType.ODD_HOUR_HIGH_AMOUNT: 2.0,
    FraudType.IMPOSSIBLE_TRAVEL: 1.5,
    FraudType.HABIT_BREAK: 1.5,
    FraudType.MERCHANT_SHIFT: 2.0,
}
_TRIP_PROBABILITY = 0.004
_TRIP_MIN_GAP_S = 8 * 3600.0  # trips start and end only after a plausible flight time
_EXPLORE_PROBABILITY = 0.04
_DCC_PROBABILITY = 0.15  # a traveller paying in their home currency at the terminal
_IMPOSSIBLE_TRAVEL_MIN_KM = 1000.0
_GROUP = {name: index for index, name in enumerate(MCC_GROUPS)}
_HIGH_TICKET_GROUPS = (_GROUP["electronics"], _GROUP["luxury"], _GROUP["retail"])

_T = TypeVar("_T")
_Payload = tuple[str, Store, str, float, str, FraudType | None]
_Thresholds = tuple[tuple[float, FraudType], ...]


def _pick(rng: random.Random, items: Sequence[_T]) -> _T:
    """Uniform choice; cheaper than ``Random.choice`` and just as deterministic."""
    return items[min(int(rng.random() * len(items)), len(items) - 1)]


def _poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw; exact below 30, normal approximation above (cheap and close enough)."""
    if lam <= 0.0:
        return 0
    if lam < 30.0:
        limit = math.exp(-lam)
        count = 0
        product = rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
        return count
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


class Simulator:
    """A reproducible stream of POS transactions; its ground truth goes to ``labels``."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        cfg = self.config
        # Reproducibility is the point here, not secrecy (2026-12-03).
        self._rng = random.Random(cfg.seed)  # noqa: S311
        self._label_rng = random.Random(f"{cfg.seed}:labels")  # noqa: S311
        self._drift_group = _GROUP[cfg.drift_mcc_group]
        self.world = World(self._rng, cfg.regions, cfg.n_stores, cfg.n_cards, self._drift_group)
        self.labels = LabelLedger()
        self._heap: list[tuple[float, int, _Payload]] = []
        self._sequence = 0
        self._emitted = 0
        self._horizon = cfg.start.timestamp()
        self._drift_at = math.inf if cfg.drift_at is None else cfg.drift_at.timestamp()
        self._per_minute = cfg.transactions_per_second * 60.0 / MEAN_RHYTHM
        self._id_prefix = f"{cfg.transaction_id_prefix}-{cfg.seed}-"
        self._legit_delay = cfg.legit_label_delay
        self._drift_delay = (
            cfg.drift_delay_min.total_seconds(),
            cfg.drift_delay_max.total_seconds(),
        )
        self._delay_range = (
            cfg.chargeback_delay_min.total_seconds(),
            cfg.chargeback_delay_max.total_seconds(),
        )
        self._thresholds = {
            (drifting, night): self._trigger_thresholds(drifting=drifting, night=night)
            for drifting in (False, True)
            for night in (False, True)
        }
        logger.debug(
            "simulator seed=%d: %d cities, %d stores, %d cards",
            cfg.seed,
            len(self.world.cities),
            len(self.world.stores),
            len(self.world.cards),
        )

    @property
    def now(self) -> datetime:
        """Simulated time up to which transactions have been generated."""
        return datetime.fromtimestamp(self._horizon, UTC)

    @property
    def emitted(self) -> int:
        """Transactions emitted so far."""
        return self._emitted

    def stream(self, until: datetime | None = None) -> Iterator[Transaction]:
        """Transactions in timestamp order, endless unless ``until`` (exclusive) is given.

        Successive calls continue the same stream.
        """
        limit = math.inf if until is None else until.timestamp()
        heap = self._heap
        while True:
            while heap and heap[0][0] < self._horizon:
                if heap[0][0] >= limit:
                    return
                timestamp, _, payload = heapq.heappop(heap)
                yield self._emit(timestamp, payload)
            if self._horizon >= limit:
                return
            self._generate_minute()

    def generate(self, n: int) -> list[Transaction]:
        """The next ``n`` transactions of the stream."""
        return list(islice(self.stream(), n))

    def _trigger_thresholds(self, *, drifting: bool, night: bool) -> _Thresholds:
        cfg = self.config
        drift_rate = cfg.drift_rate if drifting else 0.0
        normal_share = 1.0 - cfg.fraud_rate - drift_rate
        total_mix = sum(cfg.fraud_mix.values())
        probabilities: list[tuple[float, FraudType]] = []
        for kind in BASELINE_FRAUD_TYPES:
            rate = cfg.fraud_rate * cfg.fraud_mix.get(kind, 0.0) / total_mix
            if kind is FraudType.ODD_HOUR_HIGH_AMOUNT:
                if not night:
                    continue
                rate /= NIGHT_SHARE
            probabilities.append((rate / normal_share / MEAN_EVENT_LENGTH[kind], kind))
        if drifting:
            kind = FraudType.MERCHANT_SHIFT
            probabilities.append((drift_rate / normal_share / MEAN_EVENT_LENGTH[kind], kind))
        cumulative = 0.0
        thresholds: list[tuple[float, FraudType]] = []
        for probability, kind in probabilities:
            if probability > 0.0:
                cumulative += probability
                thresholds.append((cumulative, kind))
        return tuple(thresholds)

    def _emit(self, timestamp: float, payload: _Payload) -> Transaction:
        card_token, store, terminal_id, amount, currency, fraud_type = payload
        self._emitted += 1
        when = datetime.fromtimestamp(timestamp, UTC)
        tx = Transaction(
            transaction_id=f"{self._id_prefix}{self._emitted:010d}",
            store_id=store.store_id,
            terminal_id=terminal_id,
            card_token=card_token,
            amount=amount,
            currency=currency,
            merchant_category=store.merchant_category,
            timestamp=when,
            latitude=store.latitude,
            longitude=store.longitude,
        )
        if fraud_type is None:
            delay = self._legit_delay
        else:
            delay = timedelta(seconds=self._label_rng.uniform(*self._delay_range))
        self.labels.record(Label(tx.transaction_id, fraud_type, when, when + delay))
        return tx

    def _push(
        self,
        timestamp: float,
        card_token: str,
        store: Store,
        amount_eur: float,
        fraud_type: FraudType | None,
        *,
        currency: str | None = None,
        terminal: str | None = None,
    ) -> None:
        if terminal is None:
            terminals = store.terminal_ids
            terminal = terminals[0] if len(terminals) == 1 else _pick(self._rng, terminals)
        currency = store.currency if currency is None else currency
        payload = (
            card_token,
            store,
            terminal,
            from_eur(amount_eur, currency),
            currency,
            fraud_type,
        )
        heapq.heappush(self._heap, (round(timestamp, 3), self._sequence, payload))
        self._sequence += 1

    def _generate_minute(self) -> None:
        start = self._horizon
        rng = self._rng
        world = self.world
        for city in world.cities:
            cards = world.cards_by_city[city.index]
            if not cards:
                continue
            local = start + city.utc_offset_hours * 3600.0
            day = math.floor(local / 86400.0)
            hour = int((local - day * 86400.0) // 3600.0)
            weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
            lam = self._per_minute * city.traffic_share * rhythm(weekday, hour)
            weights = world.card_weights_by_city[city.index]
            for _ in range(_poisson(rng, lam)):
                self._ordinary(city, cards, weights, start + rng.random() * 60.0, hour)
        self._horizon = start + 60.0

    def _ordinary(
        self,
        city: CityInfo,
        cards: list[Card],
        card_weights: list[float],
        timestamp: float,
        hour: int,
    ) -> None:
        rng = self._rng
        random_ = rng.random
        world = self.world
        total = card_weights[-1]
        last = len(cards) - 1
        card = cards[min(bisect(card_weights, random_() * total), last)]
        for _ in range(3):  # card holders shop at their own hours
            if random_() < card.chronotype[hour]:
                break
            card = cards[min(bisect(card_weights, random_() * total), last)]

        gap = timestamp - card.last_t
        if card.trip_city is not None:
            if timestamp >= card.trip_until and gap > _TRIP_MIN_GAP_S:
                card.trip_city = None
        elif gap > _TRIP_MIN_GAP_S and len(world.cities) > 1 and random_() < _TRIP_PROBABILITY:
            destination = _pick(rng, range(len(world.cities) - 1))
            card.trip_city = destination + (destination >= card.home_city)
            card.trip_until = timestamp + rng.uniform(1.0, 7.0) * 86400.0

        currency = None
        if card.trip_city is not None:
            local_stores = world.stores_by_city[card.trip_city] or world.stores
            store = _pick(rng, local_stores)
            if store.currency != card.currency and rng.random() < _DCC_PROBABILITY:
                currency = card.currency
        elif rng.random() < _EXPLORE_PROBABILITY:
            local_stores = world.stores_by_city[card.home_city] or world.stores
            store = _pick(rng, local_stores)
        else:
            weights = card.store_weights
            index = bisect(weights, rng.random() * weights[-1])
            store = card.stores[min(index, len(card.stores) - 1)]
        amount_eur = math.exp(rng.gauss(card.mu, card.sigma)) * store.amount_factor
        self._push(timestamp, card.token, store, amount_eur, None, currency=currency)
        card.last_t = timestamp
        card.used_groups |= 1 << store.group

        thresholds = self._thresholds[(timestamp >= self._drift_at, hour in NIGHT_HOURS)]
        if not thresholds:
            return
        draw = rng.random()
        if draw >= thresholds[-1][0]:
            return
        kind = next(kind for threshold, kind in thresholds if draw < threshold)
        if kind is FraudType.CARD_TESTING:
            self._card_testing(timestamp)
        elif kind is FraudType.ODD_HOUR_HIGH_AMOUNT:
            self._odd_hour_high_amount(city, cards, timestamp)
        elif kind is FraudType.IMPOSSIBLE_TRAVEL:
            self._impossible_travel(card, store, timestamp)
        elif kind is FraudType.HABIT_BREAK:
            self._habit_break(card, timestamp)
        else:
            self._merchant_shift(city, cards, timestamp)

    def _card_testing(self, timestamp: float) -> None:
        """A burst of tiny payments at one terminal, with one stolen card or many."""
        rng = self._rng
        world = self.world
        store = _pick(rng, world.stores)
        terminal = _pick(rng, store.terminal_ids)
        single = rng.random() < 0.4
        token = self._stolen_token()
        when = timestamp + rng.uniform(0.0, 300.0)
        for _ in range(rng.randint(8, 20)):
            if not single:
                token = self._stolen_token()
            amount_eur = rng.uniform(0.5, 3.0)
            self._push(when, token, store, amount_eur, FraudType.CARD_TESTING, terminal=terminal)
            when += rng.uniform(3.0, 45.0)

    def _stolen_token(self) -> str:
        """Half known cards, half tokens never seen before (cards bought in bulk)."""
        rng = self._rng
        if rng.random() < 0.5:
            cards = self.world.cards
            return _pick(rng, cards).token
        return f"card_{rng.getrandbits(64):016x}"

    def _odd_hour_high_amount(self, city: CityInfo, cards: list[Card], timestamp: float) -> None:
        """High tickets in the small hours, near the card's home."""
        rng = self._rng
        card = _pick(rng, cards)
        stores = self.world.stores_by_city[card.home_city] or self.world.stores
        when = timestamp + rng.uniform(30.0, 900.0)
        for _ in range(rng.randint(1, 3)):
            store = _pick(rng, stores)
            amount_eur = math.exp(card.mu) * rng.uniform(6.0, 30.0)
            self._push(when, card.token, store, amount_eur, FraudType.ODD_HOUR_HIGH_AMOUNT)
            when += rng.uniform(120.0, 1500.0)

    def _impossible_travel(self, card: Card, seen_at: Store, timestamp: float) -> None:
        """A cloned card used far away minutes after the genuine one."""
        rng = self._rng
        store = self.world.far_store(
            rng, seen_at.latitude, seen_at.longitude, _IMPOSSIBLE_TRAVEL_MIN_KM
        )
        when = timestamp + rng.uniform(120.0, 1800.0)
        for _ in range(1 + (rng.random() < 0.5)):
            amount_eur = (
                math.exp(rng.gauss(card.mu, card.sigma)) * store.amount_factor * rng.uniform(1, 3)
            )
            self._push(when, card.token, store, amount_eur, FraudType.IMPOSSIBLE_TRAVEL)
            when += rng.uniform(60.0, 900.0)

    def _habit_break(self, card: Card, timestamp: float) -> None:
        """A card suddenly spending far above its habit, at ordinary hours, close to home."""
        rng = self._rng
        world = self.world
        city = card.home_city if card.trip_city is None else card.trip_city
        by_group = world.stores_by_city_group[city]
        candidates = [store for group in _HIGH_TICKET_GROUPS for store in by_group[group]]
        stores = candidates or world.stores_by_city[city] or world.stores
        when = timestamp + rng.uniform(60.0, 3600.0)
        for _ in range(1 + (rng.random() < 0.5)):
            store = _pick(rng, stores)
            amount_eur = math.exp(card.mu) * rng.uniform(8.0, 40.0)
            self._push(when, card.token, store, amount_eur, FraudType.HABIT_BREAK)
            when += rng.uniform(60.0, 1800.0)

    def _merchant_shift(self, city: CityInfo, cards: list[Card], timestamp: float) -> None:
        """The drift pattern: ordinary-looking tickets in a group the card never used."""
        rng = self._rng
        world = self.world
        group = self._drift_group
        bit = 1 << group
        for _ in range(8):
            card = _pick(rng, cards)
            if card.last_t > -math.inf and not card.used_groups & bit:
                break
        else:
            return
        stores = (
            world.stores_by_city_group[card.home_city][group]
            or world.stores_by_region_group[card.region][group]
        )
        if not stores:
            return
        when = timestamp + rng.uniform(*self._drift_delay)
        for _ in range(rng.randint(1, 3)):
            store = _pick(rng, stores)
            amount_eur = (
                math.exp(rng.gauss(card.mu, card.sigma))
                * store.amount_factor
                * rng.uniform(0.6, 1.2)
            )
            self._push(when, card.token, store, amount_eur, FraudType.MERCHANT_SHIFT)
            when += rng.uniform(600.0, 5400.0)


def generate(
    n: int, config: SimulatorConfig | None = None
) -> tuple[list[Transaction], list[Label]]:
    """The first ``n`` transactions of a fresh simulator and all their labels, in the same order."""
    simulator = Simulator(config)
    transactions = simulator.generate(n)
    return transactions, simulator.labels.drain()
