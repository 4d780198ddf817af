"""Transaction -> feature vector: the one versioned definition, shared by agent and training.

Training replays transactions through :class:`FeatureExtractor` exactly as the
agent does, so a model only ever sees features computed by this code. Any
change to a name, an order, a constant below or a formula is a new
``FEATURE_SPEC_VERSION``; a model names the version it was trained on and the
agent refuses a model whose version it does not implement.

Features, in order (``FEATURE_NAMES``):

Stateless
  ``amount_log``               log1p(amount) in the transaction currency.
  ``amount_eur_log``           log1p(amount in EUR), converted with the fixed
                               ``EUR_PER_UNIT`` table (unknown currency: 1.0).
  ``hour_sin/hour_cos``        time of day as a circle, in local mean solar time
                               (UTC + longitude / 15 h): the wire format has no
                               time zone, and solar time is within about an
                               hour of civil time nearly everywhere.
  ``dow_sin/dow_cos``          day of week (Monday = 0) on the same local clock.
                               Train on whole weeks: a shorter window confounds
                               the weekday with anything that began inside it,
                               such as a new fraud pattern.
  ``mcc_<group>``              one-hot of ``MCC_GROUPS``; see ``mcc_group_index``.
  ``foreign_currency``         1 if the currency differs from the first currency
                               seen at this terminal (dynamic currency
                               conversion, cloned terminals), else 0.

Per card (all windows count the card's *earlier* transactions in (t - w, t])
  ``card_new``                 1 if the card has no live state (first seen, or
                               expired / evicted).
  ``card_tx_1m/10m/1h/24h``    earlier transactions in the window; saturates at
                               ``CARD_HISTORY_MAX``.
  ``card_amount_sum_1h_log``   log1p(sum of EUR amounts in the last hour).
  ``card_amount_zscore``       log1p(EUR amount) against an exponentially
                               weighted mean and variance of the same, in
                               [-10, 10]; 0 for a new card.
  ``card_amount_log_ratio``    log(EUR amount / EW mean EUR amount), in [-20, 20].
  ``card_seconds_since_last_log`` log1p(seconds since the card's last use);
                               log1p(STATE_TTL_S) for a new card.
  ``card_distance_km_log``     log1p(great-circle km from the last location).
  ``card_speed_kmh_log``       log1p(implied km/h from the last location; the
                               time delta is floored at ``MIN_TRAVEL_SECONDS``
                               so simultaneous far-apart uses stay finite).
  ``card_terminals_1h``        distinct terminals among the last hour's uses.
  ``card_new_mcc_group``       1 if a known card has never been seen in this
                               merchant-category group (within its live state).

Per terminal
  ``terminal_tx_1m``           earlier transactions at the terminal, last minute.
  ``terminal_small_tx_10m``    earlier transactions under ``SMALL_AMOUNT_EUR``
                               at the terminal in the last 10 minutes (card
                               testing runs many tiny authorisations).

Time and ordering. Each card and terminal keeps its own clock, which never
runs backwards: a transaction stamped earlier than the entity's latest one
(clock skew between terminals) is processed as if it happened at that latest
time, so deltas are never negative.

Robustness. Every output is finite for every input, including transactions
built without validation: amounts are clamped to [``MIN_AMOUNT``,
``MAX_AMOUNT``] and coordinates to their ranges (NaN maps to the lower bound),
and every ratio has a floored denominator.

Memory bounds. State lives in two LRU maps, at most ``max_cards`` cards and
``max_terminals`` terminals; the least recently used entry is evicted first.
State idle for more than ``STATE_TTL_S`` (the longest window, 24 h) is treated
as absent when next read, and is dropped lazily (every ``_EXPIRE_EVERY``
transactions, at most ``_EXPIRE_BUDGET`` entries, so latency stays flat) or
all at once by
:meth:`FeatureExtractor.expire`.
Per card the history holds at most ``CARD_HISTORY_MAX`` (48) entries, per
terminal each window at most ``TERMINAL_HISTORY_MAX`` (128) timestamps.
Measured with tracemalloc on CPython 3.11 x86-64, including the LRU key and
dict slot: a card with one use takes about 0.45 KiB, plus about 0.15 KiB per
further use in its history, so about 7.7 KiB when the history is full; a
terminal about 0.3 KiB with one use and about 5.8 KiB with both windows full.
With the defaults (100,000 cards, 10,000 terminals) that is about 70 MiB for
ordinary traffic (a few uses per card per day) and under 0.9 GiB in the
adversarial worst case where every card and terminal is saturated; lower
``max_cards`` on small devices.
"""

import logging
import math
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from edge_agent.protocol.transaction import Transaction

logger = logging.getLogger(__name__)

FEATURE_SPEC_VERSION: Final = 1

MCC_GROUPS: Final[tuple[str, ...]] = (
    "grocery",
    "dining",
    "fuel_transport",
    "retail",
    "electronics",
    "luxury",
    "travel",
    "health",
    "other",
)

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "amount_log",
    "amount_eur_log",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    *(f"mcc_{group}" for group in MCC_GROUPS),
    "foreign_currency",
    "card_new",
    "card_tx_1m",
    "card_tx_10m",
    "card_tx_1h",
    "card_tx_24h",
    "card_amount_sum_1h_log",
    "card_amount_zscore",
    "card_amount_log_ratio",
    "card_seconds_since_last_log",
    "card_distance_km_log",
    "card_speed_kmh_log",
    "card_terminals_1h",
    "card_new_mcc_group",
    "terminal_tx_1m",
    "terminal_small_tx_10m",
)
N_FEATURES: Final = len(FEATURE_NAMES)

# EUR per unit of each currency. Deliberately fixed, approximate mid-2020s
# rates: the feature must not move with markets between training and serving.
EUR_PER_UNIT: Final[Mapping[str, float]] = MappingProxyType(
    {
        "EUR": 1.0,
        "USD": 0.92,
        "GBP": 1.17,
        "CHF": 1.05,
        "JPY": 0.0062,
        "AUD": 0.61,
        "NZD": 0.56,
        "CAD": 0.68,
        "SEK": 0.088,
        "NOK": 0.087,
        "DKK": 0.134,
        "PLN": 0.23,
        "CZK": 0.040,
        "HUF": 0.0025,
        "RON": 0.20,
        "TRY": 0.028,
        "CNY": 0.13,
        "HKD": 0.118,
        "SGD": 0.69,
        "KRW": 0.00068,
        "INR": 0.011,
        "BRL": 0.18,
        "MXN": 0.054,
        "ZAR": 0.050,
        "AED": 0.25,
    }
)

SECONDS_1M: Final = 60.0
SECONDS_10M: Final = 600.0
SECONDS_1H: Final = 3_600.0
SECONDS_24H: Final = 86_400.0
STATE_TTL_S: Final = SECONDS_24H
"""State idle for longer than the longest window no longer contributes to any feature."""

CARD_HISTORY_MAX: Final = 48
TERMINAL_HISTORY_MAX: Final = 128
SMALL_AMOUNT_EUR: Final = 5.0
MIN_TRAVEL_SECONDS: Final = 60.0
"""POS clocks drift by up to about a minute, so faster deltas say nothing about speed."""

MIN_AMOUNT: Final = 1e-6
MAX_AMOUNT: Final = 1e12
EWM_ALPHA: Final = 0.15
EWM_PRIOR_VARIANCE: Final = 0.5
EWM_VARIANCE_FLOOR: Final = 0.05
ZSCORE_LIMIT: Final = 10.0
LOG_RATIO_LIMIT: Final = 20.0
EARTH_RADIUS_KM: Final = 6371.0088

DEFAULT_MAX_CARDS: Final = 100_000
DEFAULT_MAX_TERMINALS: Final = 10_000
_EXPIRE_EVERY: Final = 64  # a power of two: checked with a bit mask
_EXPIRE_BUDGET: Final = 128  # twice the entries that can be added in between

_DEG = math.pi / 180.0
_TWO_PI = 2.0 * math.pi
_SOLAR_SECONDS_PER_DEGREE = 240.0  # 15 degrees of longitude per hour
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0
_NEW_CARD_SECONDS_LOG = math.log1p(STATE_TTL_S)

# MCC -> group. Exact codes first, then inclusive ranges; anything else is "other".
_GROUP = {name: index for index, name in enumerate(MCC_GROUPS)}
_MCC_EXACT: Final[Mapping[int, int]] = MappingProxyType(
    {
        **dict.fromkeys((5300, 5411, 5422, 5441, 5451, 5462, 5499), _GROUP["grocery"]),
        **dict.fromkeys((5811, 5812, 5813, 5814), _GROUP["dining"]),
        **dict.fromkeys(
            (4111, 4112, 4121, 4131, 4784, 4789, 5172, 5541, 5542, 5983, 7523),
            _GROUP["fuel_transport"],
        ),
        **dict.fromkeys(
            (4812, 5044, 5045, 5722, 5732, 5733, 5734, 5735, 5815, 5816, 5817, 5818),
            _GROUP["electronics"],
        ),
        **dict.fromkeys((5094, 5681, 5932, 5937, 5944, 5950, 5971), _GROUP["luxury"]),
        **dict.fromkeys((4411, 4511, 4722, 7011, 7012, 7512, 7519), _GROUP["travel"]),
        **dict.fromkeys(
            (5047, 5122, 5912, 5975, 5976, 8011, 8021, 8031, 8041, 8042, 8043, 8049, 8050),
            _GROUP["health"],
        ),
        **dict.fromkeys((8062, 8071, 8099), _GROUP["health"]),
    }
)
_MCC_RANGES: Final[tuple[tuple[int, int, int], ...]] = (
    (3000, 3299, _GROUP["travel"]),  # airlines
    (3351, 3441, _GROUP["travel"]),  # car rental
    (3501, 3999, _GROUP["travel"]),  # lodging
    (5200, 5299, _GROUP["retail"]),  # home supply, hardware
    (5300, 5399, _GROUP["retail"]),  # department and discount stores
    (5600, 5699, _GROUP["retail"]),  # clothing
    (5700, 5719, _GROUP["retail"]),  # furniture
    (5940, 5949, _GROUP["retail"]),  # sport, books, hobby, gifts
    (5970, 5999, _GROUP["retail"]),  # miscellaneous specialty retail
)
_mcc_cache: dict[str, int] = {}


def mcc_group_index(mcc: str) -> int:
    """Index into ``MCC_GROUPS`` for a merchant category code (``other`` if unknown)."""
    cached = _mcc_cache.get(mcc)
    if cached is not None:
        return cached
    group = _GROUP["other"]
    if len(mcc) == 4 and mcc.isdigit():
        code = int(mcc)
        exact = _MCC_EXACT.get(code)
        if exact is not None:
            group = exact
        else:
            for low, high, index in _MCC_RANGES:
                if low <= code <= high:
                    group = index
                    break
        _mcc_cache[mcc] = group  # at most 10,000 keys: only 4-digit codes are cached
    return group


def mcc_group(mcc: str) -> str:
    """Name of the merchant-category group of ``mcc``."""
    return MCC_GROUPS[mcc_group_index(mcc)]


def to_eur(amount: float, currency: str) -> float:
    """Convert with the spec's fixed table; an unknown currency counts as EUR."""
    return amount * EUR_PER_UNIT.get(currency, 1.0)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance; exact across the antimeridian and at the poles."""
    phi1 = lat1 * _DEG
    phi2 = lat2 * _DEG
    sin_dphi = math.sin((phi2 - phi1) * 0.5)
    sin_dlam = math.sin((lon2 - lon1) * _DEG * 0.5)
    a = sin_dphi * sin_dphi + math.cos(phi1) * math.cos(phi2) * sin_dlam * sin_dlam
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, a))))


class _CardState:
    """What one card leaves behind.

    ``history`` holds (time, EUR amount, hash of the terminal id): the hash is
    only compared within this process, and is smaller than the id itself.
    """

    __slots__ = (
        "groups",
        "history",
        "last_lat",
        "last_lon",
        "last_t",
        "mean_amount",
        "mean_log",
        "var_log",
    )

    def __init__(self, t: float, lat: float, lon: float, log_amount: float, amount: float) -> None:
        self.last_t = t
        self.last_lat = lat
        self.last_lon = lon
        self.mean_log = log_amount
        self.var_log = EWM_PRIOR_VARIANCE
        self.mean_amount = amount
        self.groups = 0
        self.history: list[tuple[float, float, int]] = []


class _TerminalState:
    """Recent timestamps at one terminal: all of the last minute, small ones of the last 10."""

    __slots__ = ("currency", "last_t", "recent", "small")

    def __init__(self, t: float, currency: str) -> None:
        self.last_t = t
        self.currency = currency
        self.recent: list[float] = []
        self.small: list[float] = []


@dataclass(frozen=True, slots=True)
class FeatureStateStats:
    """Telemetry about the extractor's state, for health reports."""

    cards: int
    terminals: int
    max_cards: int
    max_terminals: int
    transactions: int
    late_transactions: int
    evicted_cards: int
    evicted_terminals: int
    expired_cards: int
    expired_terminals: int


class FeatureExtractor:
    """Turns transactions into ``FEATURE_NAMES`` vectors, keeping bounded per-entity state.

    Not thread-safe: one extractor per scoring loop. Feed transactions in
    arrival order; the stateful features depend on it.
    """

    def __init__(
        self,
        *,
        max_cards: int = DEFAULT_MAX_CARDS,
        max_terminals: int = DEFAULT_MAX_TERMINALS,
    ) -> None:
        if max_cards < 1 or max_terminals < 1:
            raise ValueError("max_cards and max_terminals must be at least 1")
        self._max_cards = max_cards
        self._max_terminals = max_terminals
        self._cards: OrderedDict[str, _CardState] = OrderedDict()
        self._terminals: OrderedDict[str, _TerminalState] = OrderedDict()
        self._transactions = 0
        self._late = 0
        self._evicted_cards = 0
        self._evicted_terminals = 0
        self._expired_cards = 0
        self._expired_terminals = 0

    def transform(self, tx: Transaction) -> npt.NDArray[np.float32]:
        """Feature vector of one transaction, shape ``(N_FEATURES,)``; updates state."""
        return np.array(self._row(tx), dtype=np.float32)

    def transform_many(self, txs: Iterable[Transaction]) -> npt.NDArray[np.float32]:
        """Feature matrix, shape ``(n, N_FEATURES)``, processing ``txs`` in order."""
        # Packing each row into a C float buffer right away keeps no Python
        # floats alive, which is markedly faster than one big np.array(rows).
        buffer = array("f")
        extend = buffer.extend
        row = self._row
        for tx in txs:
            extend(row(tx))
        return np.frombuffer(buffer, dtype=np.float32).reshape(-1, N_FEATURES)

    def state_size(self) -> FeatureStateStats:
        """Current state counts and lifetime counters."""
        return FeatureStateStats(
            cards=len(self._cards),
            terminals=len(self._terminals),
            max_cards=self._max_cards,
            max_terminals=self._max_terminals,
            transactions=self._transactions,
            late_transactions=self._late,
            evicted_cards=self._evicted_cards,
            evicted_terminals=self._evicted_terminals,
            expired_cards=self._expired_cards,
            expired_terminals=self._expired_terminals,
        )

    def expire(self, now: datetime) -> int:
        """Drop all state idle for more than ``STATE_TTL_S`` at ``now``.

        Transactions already drop expired state a little at a time; an agent
        calls this on a timer so that memory also shrinks when traffic stops.
        Returns the number of entries dropped.
        """
        dropped = self._expire(now.timestamp(), len(self._cards) + len(self._terminals))
        if dropped:
            logger.debug("expired %d feature state entries", dropped)
        return dropped

    def _expire(self, now: float, budget: int) -> int:
        horizon = now - STATE_TTL_S
        dropped = 0
        cards = self._cards
        while cards and dropped < budget:
            oldest = next(iter(cards.values()))
            if oldest.last_t >= horizon:
                break
            cards.popitem(last=False)
            self._expired_cards += 1
            dropped += 1
        terminals = self._terminals
        while terminals and dropped < budget:
            oldest_terminal = next(iter(terminals.values()))
            if oldest_terminal.last_t >= horizon:
                break
            terminals.popitem(last=False)
            self._expired_terminals += 1
            dropped += 1
        return dropped

    def _row(self, tx: Transaction) -> list[float]:
        """Compute the features against the state so far, then fold ``tx`` into it."""
        self._transactions += 1
        t = tx.timestamp.timestamp()
        amount = min(MAX_AMOUNT, max(MIN_AMOUNT, tx.amount))
        currency = tx.currency
        amount_eur = min(MAX_AMOUNT, max(MIN_AMOUNT, amount * EUR_PER_UNIT.get(currency, 1.0)))
        lat = min(90.0, max(-90.0, tx.latitude))
        lon = min(180.0, max(-180.0, tx.longitude))
        log_amount_eur = math.log1p(amount_eur)

        # Local mean solar time: the wire format carries no time zone.
        local = t + lon * _SOLAR_SECONDS_PER_DEGREE
        day = math.floor(local / SECONDS_24H)
        hour_angle = (local - day * SECONDS_24H) * (_TWO_PI / SECONDS_24H)
        dow_angle = ((day + _EPOCH_WEEKDAY) % 7) * (_TWO_PI / 7.0)

        group = mcc_group_index(tx.merchant_category)
        group_bit = 1 << group
        onehot = [0.0] * len(MCC_GROUPS)
        onehot[group] = 1.0

        # Terminal: velocity and small-amount bursts.
        terminals = self._terminals
        terminal_id = tx.terminal_id
        terminal = terminals.get(terminal_id)
        if terminal is not None and t - terminal.last_t > STATE_TTL_S:
            del terminals[terminal_id]
            self._expired_terminals += 1
            terminal = None
        if terminal is None:
            terminal = _TerminalState(t, currency)
            terminals[terminal_id] = terminal
            if len(terminals) > self._max_terminals:
                terminals.popitem(last=False)
                self._evicted_terminals += 1
            foreign = 0.0
            terminal_1m = 0
            terminal_small = 0
            tt = t
        else:
            terminals.move_to_end(terminal_id)
            tt = t if t > terminal.last_t else terminal.last_t
            terminal.last_t = tt
            foreign = 0.0 if currency == terminal.currency else 1.0
            recent = terminal.recent
            cut = 0
            for ts in recent:
                if tt - ts < SECONDS_1M:
                    break
                cut += 1
            if cut:
                del recent[:cut]
            terminal_1m = len(recent)
            small = terminal.small
            cut = 0
            for ts in small:
                if tt - ts < SECONDS_10M:
                    break
                cut += 1
            if cut:
                del small[:cut]
            terminal_small = len(small)
        terminal.recent.append(tt)
        if len(terminal.recent) > TERMINAL_HISTORY_MAX:
            del terminal.recent[0]
        if amount_eur < SMALL_AMOUNT_EUR:
            terminal.small.append(tt)
            if len(terminal.small) > TERMINAL_HISTORY_MAX:
                del terminal.small[0]

        # Card: velocity, amount habit, travel.
        cards = self._cards
        card_token = tx.card_token
        card = cards.get(card_token)
        if card is not None and t - card.last_t > STATE_TTL_S:
            del cards[card_token]
            self._expired_cards += 1
            card = None
        if card is None:
            card = _CardState(t, lat, lon, log_amount_eur, amount_eur)
            cards[card_token] = card
            if len(cards) > self._max_cards:
                cards.popitem(last=False)
                self._evicted_cards += 1
            card_features = [
                1.0,  # card_new
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,  # zscore
                0.0,  # log ratio
                _NEW_CARD_SECONDS_LOG,
                0.0,
                0.0,
                0.0,
                0.0,  # new group: unknown for an unknown card
            ]
            tc = t
        else:
            cards.move_to_end(card_token)
            last_t = card.last_t
            if t < last_t:
                self._late += 1
                tc = last_t
            else:
                tc = t
            dt = tc - last_t
            history = card.history
            cut = 0
            for entry in history:
                if tc - entry[0] < SECONDS_24H:
                    break
                cut += 1
            if cut:
                del history[:cut]
            n_1m = n_10m = n_1h = 0
            sum_1h = 0.0
            terminals_1h: set[int] = set()
            for entry_t, entry_amount, entry_terminal in reversed(history):
                age = tc - entry_t
                if age >= SECONDS_1H:
                    break
                n_1h += 1
                sum_1h += entry_amount
                terminals_1h.add(entry_terminal)
                if age < SECONDS_10M:
                    n_10m += 1
                    if age < SECONDS_1M:
                        n_1m += 1
            zscore = (log_amount_eur - card.mean_log) / math.sqrt(card.var_log + EWM_VARIANCE_FLOOR)
            log_ratio = math.log(amount_eur / card.mean_amount)
            distance = haversine_km(card.last_lat, card.last_lon, lat, lon)
            speed = distance * 3600.0 / (dt if dt > MIN_TRAVEL_SECONDS else MIN_TRAVEL_SECONDS)
            card_features = [
                0.0,
                float(n_1m),
                float(n_10m),
                float(n_1h),
                float(len(history)),
                math.log1p(sum_1h),
                min(ZSCORE_LIMIT, max(-ZSCORE_LIMIT, zscore)),
                min(LOG_RATIO_LIMIT, max(-LOG_RATIO_LIMIT, log_ratio)),
                math.log1p(dt),
                math.log1p(distance),
                math.log1p(speed),
                float(len(terminals_1h)),
                0.0 if card.groups & group_bit else 1.0,
            ]
            # Exponentially weighted mean and variance (West's incremental form).
            diff = log_amount_eur - card.mean_log
            increment = EWM_ALPHA * diff
            card.mean_log += increment
            card.var_log = (1.0 - EWM_ALPHA) * (card.var_log + diff * increment)
            card.mean_amount += EWM_ALPHA * (amount_eur - card.mean_amount)
            card.last_t = tc
            card.last_lat = lat
            card.last_lon = lon
        card.groups |= group_bit
        card.history.append((tc, amount_eur, hash(terminal_id)))
        if len(card.history) > CARD_HISTORY_MAX:
            del card.history[0]

        if self._transactions & (_EXPIRE_EVERY - 1) == 0:
            self._expire(t, _EXPIRE_BUDGET)

        return [
            math.log1p(amount),
            log_amount_eur,
            math.sin(hour_angle),
            math.cos(hour_angle),
            math.sin(dow_angle),
            math.cos(dow_angle),
            *onehot,
            foreign,
            *card_features,
            float(terminal_1m),
            float(terminal_small),
        ]
