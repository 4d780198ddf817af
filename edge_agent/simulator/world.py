"""The simulated world: chains of stores, card holders with habits, and daily rhythms.

Everything is drawn from one seeded ``random.Random`` in a fixed order, so a
seed always builds the same world.
"""

import math
import random
from bisect import bisect
from dataclasses import dataclass, replace
from itertools import accumulate

from edge_agent.features import EUR_PER_UNIT, MCC_GROUPS, haversine_km, mcc_group_index
from edge_agent.simulator.config import Region


@dataclass(frozen=True, slots=True)
class Category:
    """A merchant category: its share of stores and how big its tickets are."""

    mcc: str
    store_share: float
    amount_factor: float

    @property
    def group(self) -> int:
        return mcc_group_index(self.mcc)


CATEGORIES: tuple[Category, ...] = (
    Category("5411", 0.15, 1.0),  # supermarkets
    Category("5499", 0.06, 0.35),  # convenience stores
    Category("5462", 0.03, 0.25),  # bakeries
    Category("5812", 0.12, 1.1),  # restaurants
    Category("5814", 0.08, 0.4),  # fast food
    Category("5813", 0.04, 0.8),  # bars
    Category("5541", 0.06, 1.6),  # service stations
    Category("4121", 0.03, 0.8),  # taxis
    Category("5311", 0.05, 2.0),  # department stores
    Category("5651", 0.07, 2.2),  # clothing
    Category("5942", 0.03, 0.9),  # bookstores
    Category("5732", 0.04, 4.0),  # electronics stores
    Category("5045", 0.02, 5.0),  # computers
    Category("5944", 0.02, 8.0),  # jewellery and watches
    Category("7011", 0.03, 5.0),  # hotels
    Category("4511", 0.01, 7.0),  # airlines
    Category("5912", 0.06, 0.9),  # pharmacies
    Category("8021", 0.02, 3.0),  # dentists
    Category("7230", 0.03, 0.9),  # hairdressers
    Category("7832", 0.03, 0.6),  # cinemas
)

# Probability that a card holder shops in a group at all; groups they skip
# are where merchant_shift fraud finds "never used" categories.
_GROUP_ADOPTION: dict[str, float] = {
    "grocery": 1.0,
    "dining": 0.95,
    "fuel_transport": 0.7,
    "retail": 0.85,
    "electronics": 0.25,
    "luxury": 0.08,
    "travel": 0.15,
    "health": 0.6,
    "other": 0.6,
}
# How often an adopted group is visited, relative to groceries.
_GROUP_FREQUENCY: dict[str, float] = {
    "grocery": 1.0,
    "dining": 0.8,
    "fuel_transport": 0.35,
    "retail": 0.35,
    "electronics": 0.08,
    "luxury": 0.03,
    "travel": 0.05,
    "health": 0.2,
    "other": 0.2,
}

# Traffic by local hour, relative; lunch and evening peaks, later weekend mornings.
WEEKDAY_RHYTHM: tuple[float, ...] = (
    0.12, 0.06, 0.04, 0.03, 0.04, 0.08, 0.25, 0.55, 0.8, 0.85, 0.9, 1.15,
    1.6, 1.5, 1.0, 0.9, 1.0, 1.3, 1.55, 1.45, 1.1, 0.75, 0.45, 0.25,
)  # fmt: skip
WEEKEND_RHYTHM: tuple[float, ...] = (
    0.25, 0.15, 0.1, 0.06, 0.04, 0.05, 0.1, 0.2, 0.45, 0.8, 1.1, 1.35,
    1.55, 1.55, 1.4, 1.3, 1.25, 1.3, 1.45, 1.4, 1.15, 0.9, 0.6, 0.4,
)  # fmt: skip
DAY_FACTOR: tuple[float, ...] = (0.95, 0.95, 1.0, 1.0, 1.15, 1.2, 0.75)  # Monday first


def rhythm(weekday: int, hour: int) -> float:
    """Relative traffic at a local weekday (Monday = 0) and hour."""
    hours = WEEKEND_RHYTHM if weekday >= 5 else WEEKDAY_RHYTHM
    return DAY_FACTOR[weekday] * hours[hour]


MEAN_RHYTHM = sum(rhythm(day, hour) for day in range(7) for hour in range(24)) / (7 * 24)
NIGHT_HOURS = range(1, 5)
NIGHT_SHARE = sum(rhythm(day, hour) for day in range(7) for hour in NIGHT_HOURS) / (
    MEAN_RHYTHM * 7 * 24
)
"""Share of all traffic that falls between 01:00 and 05:00 local time."""

# Acceptance probability by local hour for three kinds of card holder.
_CHRONOTYPES: tuple[tuple[float, ...], ...] = tuple(
    tuple(
        0.15 + 0.85 * math.exp(-(((hour - peak + 12) % 24 - 12) ** 2) / (2 * 4.0**2))
        for hour in range(24)
    )
    for peak in (11.0, 14.5, 18.5)
)

ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW"})


def from_eur(amount_eur: float, currency: str) -> float:
    """Price in ``currency``, rounded to its minor unit and never below one minor unit."""
    amount = amount_eur / EUR_PER_UNIT[currency]
    if currency in ZERO_DECIMAL_CURRENCIES:
        return float(max(1, round(amount)))
    return max(0.01, round(amount, 2))


@dataclass(frozen=True, slots=True)
class CityInfo:
    """A city placed in the world, with its index into ``World.cities``."""

    index: int
    name: str
    region: str
    currency: str
    latitude: float
    longitude: float
    utc_offset_hours: float
    traffic_share: float


@dataclass(frozen=True, slots=True)
class Store:
    """A shop front: one chain outlet with its own terminals."""

    store_id: str
    chain_id: str
    city: int
    region: str
    currency: str
    merchant_category: str
    group: int
    amount_factor: float
    latitude: float
    longitude: float
    terminal_ids: tuple[str, ...]


class Card:
    """A card holder's habits plus the little the simulator remembers about them."""

    __slots__ = (
        "chronotype",
        "currency",
        "home_city",
        "last_t",
        "mu",
        "region",
        "sigma",
        "store_weights",
        "stores",
        "token",
        "trip_city",
        "trip_until",
        "used_groups",
    )

    def __init__(
        self,
        token: str,
        home_city: CityInfo,
        mu: float,
        sigma: float,
        chronotype: tuple[float, ...],
        stores: list[Store],
        store_weights: list[float],
    ) -> None:
        self.token = token
        self.home_city = home_city.index
        self.region = home_city.region
        self.currency = home_city.currency
        self.mu = mu  # log of the median ticket in EUR
        self.sigma = sigma
        self.chronotype = chronotype
        self.stores = stores
        self.store_weights = store_weights  # cumulative, for bisect
        self.used_groups = 0
        self.last_t = -math.inf
        self.trip_city: int | None = None
        self.trip_until = -math.inf


class World:
    """Stores and cards, indexed the ways the generator needs to pick them."""

    def __init__(
        self,
        rng: random.Random,
        regions: tuple[Region, ...],
        n_stores: int,
        n_cards: int,
        ensure_group: int,
    ) -> None:
        self.cities = self._place_cities(regions)
        city_cumulative = list(accumulate(city.traffic_share for city in self.cities))
        self.stores = self._build_stores(rng, n_stores, city_cumulative, ensure_group)
        self.stores_by_city: list[list[Store]] = [[] for _ in self.cities]
        self.stores_by_city_group: list[list[list[Store]]] = [
            [[] for _ in MCC_GROUPS] for _ in self.cities
        ]
        self.stores_by_region_group: dict[str, list[list[Store]]] = {
            region.name: [[] for _ in MCC_GROUPS] for region in regions
        }
        for store in self.stores:
            self.stores_by_city[store.city].append(store)
            self.stores_by_city_group[store.city][store.group].append(store)
            self.stores_by_region_group[store.region][store.group].append(store)
        self.cards = self._build_cards(rng, n_cards, city_cumulative)
        self.cards_by_city: list[list[Card]] = [[] for _ in self.cities]
        activity_by_city: list[list[float]] = [[] for _ in self.cities]
        for card in self.cards:
            self.cards_by_city[card.home_city].append(card)
            activity_by_city[card.home_city].append(rng.lognormvariate(0.0, 0.8))
        self.card_weights_by_city = [list(accumulate(weights)) for weights in activity_by_city]

    @staticmethod
    def _place_cities(regions: tuple[Region, ...]) -> list[CityInfo]:
        total_region = sum(region.weight for region in regions)
        cities: list[CityInfo] = []
        for region in regions:
            total_city = sum(city.weight for city in region.cities)
            for city in region.cities:
                share = region.weight / total_region * city.weight / total_city
                cities.append(
                    CityInfo(
                        index=len(cities),
                        name=city.name,
                        region=region.name,
                        currency=region.currency,
                        latitude=city.latitude,
                        longitude=city.longitude,
                        utc_offset_hours=city.utc_offset_hours,
                        traffic_share=share,
                    )
                )
        return cities

    def _random_city(self, rng: random.Random, cumulative: list[float]) -> CityInfo:
        index = bisect(cumulative, rng.random() * cumulative[-1])
        return self.cities[min(index, len(self.cities) - 1)]

    def _build_stores(
        self, rng: random.Random, n_stores: int, city_cumulative: list[float], ensure_group: int
    ) -> list[Store]:
        category_cumulative = list(accumulate(category.store_share for category in CATEGORIES))
        n_chains = max(len(CATEGORIES), n_stores // 6)
        chains = [
            CATEGORIES[bisect(category_cumulative, rng.random() * category_cumulative[-1])]
            for _ in range(n_chains)
        ]
        stores: list[Store] = []
        for index in range(n_stores):
            city = self._random_city(rng, city_cumulative)
            chain = rng.randrange(n_chains)
            category = chains[chain]
            store_id = f"store-{index:05d}"
            n_terminals = min(8, 1 + int(rng.expovariate(0.7)))
            stores.append(
                Store(
                    store_id=store_id,
                    chain_id=f"chain-{chain:04d}",
                    city=city.index,
                    region=city.region,
                    currency=city.currency,
                    merchant_category=category.mcc,
                    group=category.group,
                    amount_factor=category.amount_factor,
                    latitude=round(city.latitude + rng.gauss(0.0, 0.05), 5),
                    longitude=round(city.longitude + rng.gauss(0.0, 0.07), 5),
                    terminal_ids=tuple(f"{store_id}-t{k}" for k in range(1, n_terminals + 1)),
                )
            )
        # The drift pattern needs stores of its group in every region: convert
        # the last store of a region that has none.
        fallback = next(category for category in CATEGORIES if category.group == ensure_group)
        covered = {store.region for store in stores if store.group == ensure_group}
        for index in range(len(stores) - 1, -1, -1):
            store = stores[index]
            if store.region not in covered:
                covered.add(store.region)
                stores[index] = replace(
                    store,
                    chain_id="independent",
                    merchant_category=fallback.mcc,
                    group=fallback.group,
                    amount_factor=fallback.amount_factor,
                )
        return stores

    def _build_cards(
        self, rng: random.Random, n_cards: int, city_cumulative: list[float]
    ) -> list[Card]:
        cards: list[Card] = []
        for _ in range(n_cards):
            city = self._random_city(rng, city_cumulative)
            stores: list[Store] = []
            weights: list[float] = []
            for group, name in enumerate(MCC_GROUPS):
                if rng.random() >= _GROUP_ADOPTION[name]:
                    continue
                candidates = self.stores_by_city_group[city.index][group]
                if not candidates:
                    continue
                for _ in range(1 + int(rng.random() * 3)):
                    stores.append(candidates[rng.randrange(len(candidates))])
                    weights.append(_GROUP_FREQUENCY[name] * rng.lognormvariate(0.0, 0.7))
            if not stores:  # a city with no stores in the adopted groups
                local = self.stores_by_city[city.index] or self.stores
                stores.append(local[rng.randrange(len(local))])
                weights.append(1.0)
            cards.append(
                Card(
                    token=f"card_{rng.getrandbits(64):016x}",
                    home_city=city,
                    mu=rng.gauss(math.log(22.0), 0.45),
                    sigma=rng.uniform(0.3, 0.75),
                    chronotype=_CHRONOTYPES[rng.randrange(len(_CHRONOTYPES))],
                    stores=stores,
                    store_weights=list(accumulate(weights)),
                )
            )
        return cards

    def far_store(
        self, rng: random.Random, latitude: float, longitude: float, min_km: float
    ) -> Store:
        """A store at least ``min_km`` away when one exists (else the farthest of a few tries)."""
        best = self.stores[rng.randrange(len(self.stores))]
        best_km = haversine_km(latitude, longitude, best.latitude, best.longitude)
        for _ in range(12):
            if best_km >= min_km:
                break
            store = self.stores[rng.randrange(len(self.stores))]
            km = haversine_km(latitude, longitude, store.latitude, store.longitude)
            if km > best_km:
                best, best_km = store, km
        return best
