"""Configuration of the POS traffic simulator: regions, rates, fraud mix and drift."""

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.features import EUR_PER_UNIT, MCC_GROUPS


class FraudType(StrEnum):
    """Kinds of fraud the simulator injects; the value is what labels carry."""

    CARD_TESTING = "card_testing"
    ODD_HOUR_HIGH_AMOUNT = "odd_hour_high_amount"
    IMPOSSIBLE_TRAVEL = "impossible_travel"
    HABIT_BREAK = "habit_break"
    MERCHANT_SHIFT = "merchant_shift"


BASELINE_FRAUD_TYPES: tuple[FraudType, ...] = (
    FraudType.CARD_TESTING,
    FraudType.ODD_HOUR_HIGH_AMOUNT,
    FraudType.IMPOSSIBLE_TRAVEL,
    FraudType.HABIT_BREAK,
)
"""Present from the start; ``MERCHANT_SHIFT`` only appears after ``drift_at``."""


class City(BaseModel):
    """A city where stores stand and cards live; ``weight`` is its share of its region."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    latitude: float = Field(ge=-90.0, le=90.0)
    longitude: float = Field(ge=-180.0, le=180.0)
    utc_offset_hours: float = Field(ge=-12.0, le=14.0, description="Standard time, no DST")
    weight: float = Field(default=1.0, gt=0.0)


class Region(BaseModel):
    """A currency area; ``weight`` is its share of stores, cards and traffic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    currency: str
    cities: tuple[City, ...] = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0.0)

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in EUR_PER_UNIT:
            raise ValueError(f"currency {value!r} is not in the feature spec's table")
        return value


DEFAULT_REGIONS: tuple[Region, ...] = (
    Region(
        name="EU",
        currency="EUR",
        weight=0.35,
        cities=(
            City(name="Paris", latitude=48.8566, longitude=2.3522, utc_offset_hours=1, weight=1.2),
            City(name="Berlin", latitude=52.52, longitude=13.405, utc_offset_hours=1),
            City(name="Madrid", latitude=40.4168, longitude=-3.7038, utc_offset_hours=1),
            City(name="Milan", latitude=45.4642, longitude=9.19, utc_offset_hours=1, weight=0.8),
            City(name="Amsterdam", latitude=52.37, longitude=4.895, utc_offset_hours=1, weight=0.6),
        ),
    ),
    Region(
        name="UK",
        currency="GBP",
        weight=0.15,
        cities=(
            City(name="London", latitude=51.5074, longitude=-0.1278, utc_offset_hours=0, weight=2),
            City(name="Manchester", latitude=53.4808, longitude=-2.2426, utc_offset_hours=0),
            City(name="Edinburgh", latitude=55.9533, longitude=-3.1883, utc_offset_hours=0),
        ),
    ),
    Region(
        name="US",
        currency="USD",
        weight=0.3,
        cities=(
            City(
                name="New York", latitude=40.7128, longitude=-74.006, utc_offset_hours=-5, weight=2
            ),
            City(name="Chicago", latitude=41.8781, longitude=-87.6298, utc_offset_hours=-6),
            City(name="Los Angeles", latitude=34.0522, longitude=-118.2437, utc_offset_hours=-8),
            City(
                name="Miami", latitude=25.7617, longitude=-80.1918, utc_offset_hours=-5, weight=0.7
            ),
        ),
    ),
    Region(
        name="JP",
        currency="JPY",
        weight=0.1,
        cities=(
            City(name="Tokyo", latitude=35.6762, longitude=139.6503, utc_offset_hours=9, weight=2),
            City(name="Osaka", latitude=34.6937, longitude=135.5023, utc_offset_hours=9),
        ),
    ),
    Region(
        name="AU",
        currency="AUD",
        weight=0.1,
        cities=(
            City(name="Sydney", latitude=-33.8688, longitude=151.2093, utc_offset_hours=10),
            City(name="Melbourne", latitude=-37.8136, longitude=144.9631, utc_offset_hours=10),
        ),
    ),
)

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, so weeks line up with day 0


class SimulatorConfig(BaseModel):
    """Everything that determines a simulated stream; the same config gives the same stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=0, ge=0)
    n_stores: int = Field(default=400, ge=1)
    n_cards: int = Field(default=40_000, ge=1)
    regions: tuple[Region, ...] = Field(default=DEFAULT_REGIONS, min_length=1)
    start: AwareDatetime = DEFAULT_START
    transactions_per_second: float = Field(
        default=2.0, gt=0.0, description="Average over a week; the daily rhythm modulates it"
    )
    fraud_rate: float = Field(
        default=0.01, ge=0.0, lt=0.5, description="Share of transactions that are baseline fraud"
    )
    fraud_mix: dict[FraudType, float] = Field(
        default_factory=lambda: dict.fromkeys(BASELINE_FRAUD_TYPES, 0.25),
        description="Relative share of each baseline fraud type among fraudulent transactions",
    )
    drift_at: AwareDatetime | None = Field(
        default=None, description="When merchant_shift fraud starts; None keeps it off"
    )
    drift_rate: float = Field(
        default=0.005, ge=0.0, lt=0.5, description="Share of merchant_shift fraud after drift_at"
    )
    drift_mcc_group: str = Field(
        default="electronics", description="Merchant-category group merchant_shift targets"
    )
    drift_delay_min: timedelta = Field(
        default=timedelta(minutes=5),
        description="Least time from a merchant_shift card's compromise to its first use",
    )
    drift_delay_max: timedelta = timedelta(minutes=45)
    chargeback_delay_min: timedelta = timedelta(days=1)
    chargeback_delay_max: timedelta = timedelta(days=10)
    legit_label_delay: timedelta = Field(
        default=timedelta(days=10),
        description="When a transaction without chargeback is confirmed legitimate",
    )
    transaction_id_prefix: str = Field(default="tx", min_length=1, max_length=32)

    @field_validator("fraud_mix")
    @classmethod
    def _baseline_mix(cls, value: dict[FraudType, float]) -> dict[FraudType, float]:
        if any(kind not in BASELINE_FRAUD_TYPES for kind in value):
            raise ValueError("fraud_mix takes baseline fraud types only; drift has its own rate")
        if any(share < 0 for share in value.values()) or sum(value.values()) <= 0:
            raise ValueError("fraud_mix shares must be non-negative and not all zero")
        return value

    @field_validator("drift_mcc_group")
    @classmethod
    def _known_group(cls, value: str) -> str:
        if value not in MCC_GROUPS:
            raise ValueError(f"unknown merchant-category group {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "SimulatorConfig":
        if self.fraud_rate + self.drift_rate >= 0.5:
            raise ValueError("fraud_rate + drift_rate must stay below 0.5")
        if not timedelta(0) <= self.chargeback_delay_min <= self.chargeback_delay_max:
            raise ValueError("need 0 <= chargeback_delay_min <= chargeback_delay_max")
        if not timedelta(0) <= self.drift_delay_min <= self.drift_delay_max:
            raise ValueError("need 0 <= drift_delay_min <= drift_delay_max")
        if self.legit_label_delay < timedelta(0):
            raise ValueError("legit_label_delay must not be negative")
        return self
