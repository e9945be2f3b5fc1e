"""An order as the read model shows it: its state, and its ``order:{id}`` hash both ways."""

from __future__ import annotations

from dataclasses import dataclass

from libs.messages import (
    LIMIT_PRICED,
    WAITS_FOR_TRIGGER,
    OrderAccepted,
    OrderStatus,
    OrderType,
    PlaceOrder,
)

OPEN = frozenset((OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED))
FINAL = frozenset(
    (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED)
)

BOOK_TYPES = LIMIT_PRICED | {OrderType.LIQUIDATION}
"""Types with a limit price: they sit in the book while open (a liquidation order only inside
its batch: it is IOC). Market types never rest."""

LIQUIDATION_ID_BIT = 1 << 62
"""Set in the ids of the position engine's liquidation orders: they have no ``PlaceOrder``."""


@dataclass(slots=True, eq=False)
class Order:
    """One order as the read model shows it (the ``order:{id}`` hash), plus whether its
    ``PlaceOrder`` was seen. Fields a record does not know yet are empty."""

    order_id: int
    user_id: int
    symbol: str
    request_id: str
    requested: bool
    side: str = ""
    order_type: str = ""
    tif: str = ""
    price: int | None = None
    stop_price: int | None = None
    qty: int = 0
    filled: int = 0
    status: str = OrderStatus.PENDING
    reason: str = ""
    code: int | None = None
    msg: str = ""
    reduce_only: bool = False
    client_order_id: str = ""
    ts: int = 0
    triggered: bool = False

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def held(self) -> bool:
        """Whether the projection keeps it in memory: not final, or its request is still due."""
        return self.status not in FINAL or not self.requested

    @property
    def resting_lots(self) -> int:
        """Lots this order adds to its book level: the remainder of an open limit-priced order
        that is not waiting for its trigger."""
        if self.status not in OPEN or self.order_type not in BOOK_TYPES or self.price is None:
            return 0
        if self.order_type in WAITS_FOR_TRIGGER and not self.triggered:
            return 0
        return self.qty - self.filled

    def take_terms(self, source: PlaceOrder | OrderAccepted) -> None:
        """Copy what the order is (side, type, prices, quantity, ids) from its request or its
        acceptance, which say the same."""
        self.user_id = source.user_id
        self.symbol = source.symbol
        self.request_id = source.request_id
        self.side = str(source.side)
        self.order_type = str(source.order_type)
        self.tif = str(source.tif)
        self.price = source.price
        self.stop_price = source.stop_price
        self.qty = source.qty
        self.reduce_only = source.reduce_only
        self.client_order_id = source.client_order_id or ""

    def fields(self) -> dict[str, str]:
        """Return the ``order:{id}`` hash."""
        return {
            "order_id": str(self.order_id),
            "user_id": str(self.user_id),
            "symbol": self.symbol,
            "side": self.side,
            "order_type": self.order_type,
            "tif": self.tif,
            "price": "" if self.price is None else str(self.price),
            "stop_price": "" if self.stop_price is None else str(self.stop_price),
            "qty": str(self.qty),
            "filled": str(self.filled),
            "status": self.status,
            "reason": self.reason,
            "code": "" if self.code is None else str(self.code),
            "msg": self.msg,
            "reduce_only": "1" if self.reduce_only else "0",
            "client_order_id": self.client_order_id,
            "request_id": self.request_id,
            "ts": str(self.ts),
            "triggered": "1" if self.triggered else "0",
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str], requested: bool) -> Order:
        """Return the order an ``order:{id}`` hash describes (a restart's rebuild)."""

        def number(name: str) -> int | None:
            text = fields.get(name, "")
            return int(text) if text else None

        return cls(
            order_id=int(fields["order_id"]),
            user_id=int(fields["user_id"]),
            symbol=fields.get("symbol", ""),
            request_id=fields.get("request_id", ""),
            requested=requested,
            side=fields.get("side", ""),
            order_type=fields.get("order_type", ""),
            tif=fields.get("tif", ""),
            price=number("price"),
            stop_price=number("stop_price"),
            qty=number("qty") or 0,
            filled=number("filled") or 0,
            status=fields.get("status", OrderStatus.PENDING),
            reason=fields.get("reason", ""),
            code=number("code"),
            msg=fields.get("msg", ""),
            reduce_only=fields.get("reduce_only") == "1",
            client_order_id=fields.get("client_order_id", ""),
            ts=number("ts") or 0,
            triggered=fields.get("triggered") == "1",
        )
