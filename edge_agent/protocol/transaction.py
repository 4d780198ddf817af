"""The raw point-of-sale transaction as it arrives on the wire.

Validation stays declarative (constraints checked inside pydantic-core) because
the agent parses more than 20,000 of these per second per core; the only
Python-level step normalises a non-UTC offset to UTC.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

_ZERO = timedelta(0)

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
MerchantCategoryCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]


def _to_utc(value: datetime) -> datetime:
    """Keep every timestamp in UTC so that arithmetic and ordering never mix offsets."""
    if value.tzinfo is UTC or value.utcoffset() == _ZERO:
        return value
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Transaction(BaseModel):
    """One card payment at a terminal, before any enrichment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: Identifier
    store_id: Identifier
    terminal_id: Identifier
    card_token: Identifier = Field(description="Network token of the card, never a PAN")
    amount: float = Field(gt=0, allow_inf_nan=False, description="In `currency` units")
    currency: CurrencyCode = Field(description="ISO 4217 alphabetic code")
    merchant_category: MerchantCategoryCode = Field(description="ISO 18245 MCC")
    timestamp: UtcDatetime = Field(description="Time at the terminal; naive times are refused")
    latitude: float = Field(ge=-90.0, le=90.0, description="Terminal location, WGS 84 degrees")
    longitude: float = Field(ge=-180.0, le=180.0, description="Terminal location, WGS 84 degrees")
