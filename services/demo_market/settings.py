"""The demo market's settings, from the environment (see libs/settings.py)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The index feed's simulated walk starts at these (services/index_feed/sources.py), so an
# exchange with no price yet gets quotes where its index will be.
REFERENCE_PRICES = "BTC-PERP=60000,ETH-PERP=3000,SOL-PERP=150"


class DemoMarketSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    demo_market: bool = Field(True, description="on|off: off leaves the process idle")
    gateway_url: str = Field("http://127.0.0.1:8000", description="the gateway's base URL")
    demo_symbols: str = Field(
        "", description="symbols to trade, comma-separated (BTC-PERP or BTCUSDT); empty: all"
    )
    demo_levels: int = Field(5, ge=1, le=50, description="quote levels on each side")
    demo_takers: int = Field(3, ge=0, le=20, description="taker bots")
    demo_max_position: Decimal = Field(
        Decimal("5000"),
        gt=0,
        description="each bot's largest position per symbol, in USDT of notional at the "
        "price when it starts trading the symbol (then fixed as a quantity)",
    )
    demo_rate: float = Field(10.0, gt=0, description="requests per second, all bots together")
    demo_burst: int = Field(10, ge=1, description="requests the budget lets through at once")
    metrics_port: int = Field(9106, description="/metrics and /healthz")
    metrics_host: str = Field("127.0.0.1", description="address the ops endpoint binds")
    demo_user_prefix: str = Field("demo", description="bots sign up as <prefix>-maker@...")
    demo_email_domain: str = Field("example.com", description="the bots' e-mail domain")
    demo_password: str = Field("demo-market-password", min_length=8, max_length=128)
    demo_deposit: Decimal = Field(
        Decimal("100000"), gt=0, description="USDT each bot tops its balance up to (faucet)"
    )
    demo_leverage: int = Field(10, ge=1, le=125, description="leverage set on every symbol")
    demo_order_notional: Decimal = Field(
        Decimal("200"), gt=0, description="USDT of one quote level"
    )
    demo_taker_notional: Decimal = Field(
        Decimal("120"), gt=0, description="USDT of one taker order"
    )
    demo_spread_bps: int = Field(10, ge=1, description="first quote's distance from the price")
    demo_step_bps: int = Field(5, ge=1, description="distance between quote levels")
    demo_requote_bps: int = Field(
        10, ge=1, description="re-quote when the price moved more than this"
    )
    demo_refresh_seconds: float = Field(60.0, gt=0, description="re-quote at least this often")
    demo_poll_seconds: float = Field(2.0, gt=0, description="the maker's look at prices")
    demo_taker_seconds: float = Field(4.0, gt=0, description="mean pause between taker orders")
    demo_ioc_bps: int = Field(
        50, ge=1, description="how far through the price a taker's IOC limit reaches"
    )
    demo_reference_prices: str = Field(
        REFERENCE_PRICES, description="SYMBOL=price pairs used while the exchange has no price"
    )
    demo_request_timeout: float = Field(10.0, gt=0, description="seconds for one HTTP request")
