"""Request and response bodies of the REST API. Amounts are decimal strings, never floats."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

DECIMAL = r"^[0-9]{1,20}(\.[0-9]{1,18})?$"
"""A plain non-negative decimal: the money parser then checks it against the symbol's grid."""
ClientOrderId = Field(None, pattern=r"^[A-Za-z0-9._:\-]{1,36}$")


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class Credentials(Body):
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=8, max_length=128)


class SignupReply(BaseModel):
    user_id: int
    email: str


class SigninReply(BaseModel):
    token: str
    user_id: int
    expires_in: int


OrderTypeName = Literal[
    "Limit",
    "Market",
    "StopMarket",
    "StopLimit",
    "TakeProfitMarket",
    "TakeProfitLimit",
    "TrailingStop",
]


class PlaceOrderBody(Body):
    """The original API's fields, plus optional ones for the full order set."""

    user_id: int | None = Field(None, description="when present, must be the caller's id")
    symbol: str = Field(max_length=32)
    side: Literal["Buy", "Sell"]
    order_type: OrderTypeName
    price: str | None = Field(None, pattern=DECIMAL, max_length=40)
    quantity: str | None = Field(None, pattern=DECIMAL, max_length=40)
    leverage: int | str | None = Field(None, description="1 to the symbol's maximum")
    time_in_force: Literal["GTC", "IOC", "FOK", "GTX"] = "GTC"
    stop_price: str | None = Field(None, pattern=DECIMAL, max_length=40)
    trigger_by: Literal["Last", "Mark"] = "Last"
    callback_rate: str | None = Field(
        None, pattern=DECIMAL, max_length=40, description="trailing stop, percent: 0.1-10"
    )
    activation_price: str | None = Field(None, pattern=DECIMAL, max_length=40)
    reduce_only: bool = False
    close_position: bool = False
    client_order_id: str | None = ClientOrderId
    stp_mode: Literal["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"] = "NONE"


class CancelBody(Body):
    order_id: int | None = Field(None, ge=1, lt=2**63)
    client_order_id: str | None = ClientOrderId
    user_id: int | None = None
    symbol: str | None = Field(None, max_length=32, description="found from the order if absent")


class CancelAllBody(Body):
    symbol: str = Field(max_length=32)
    user_id: int | None = None


class AmendBody(Body):
    order_id: int = Field(ge=1, lt=2**63)
    price: str | None = Field(None, pattern=DECIMAL, max_length=40)
    quantity: str | None = Field(None, pattern=DECIMAL, max_length=40)
    user_id: int | None = None


class OrderReply(BaseModel):
    order_id: int
    status: str
    filled: str
    remaining: str
    symbol: str | None = None
    client_order_id: str | None = None
    reason: str | None = None
    code: int | None = None
    msg: str | None = None


class AmountBody(Body):
    asset: Literal["USDT"] = "USDT"
    amount: str = Field(pattern=DECIMAL, max_length=40)
    user_id: int | None = None


class LeverageBody(Body):
    symbol: str = Field(max_length=32)
    leverage: int = Field(ge=1, le=125)
    user_id: int | None = None


class ApiKeyBody(Body):
    # printable text only: Postgres refuses a NUL in a string (that was a 500)
    label: str = Field("", max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
