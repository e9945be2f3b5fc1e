"""Everything a request handler needs, built once per process by the composition root."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from libs import codes
from libs.messages import Message, OrderRequest
from libs.symbols import SymbolSpec
from services.gateway.adapters import Replies, Requests, Users
from services.gateway.binance.names import BinanceNames
from services.gateway.errors import ApiError
from services.gateway.ids import OrderIds
from services.gateway.reads import ReadModel
from services.gateway.replies import Kind, Outcome
from services.gateway.retries import RecentPlacements
from services.gateway.security import TokenIssuer
from services.gateway.settings import GatewaySettings

log = logging.getLogger("services.gateway")


@dataclass
class Gateway:
    settings: GatewaySettings
    symbols: dict[str, SymbolSpec]
    ids: OrderIds
    requests: Requests
    replies: Replies
    reads: ReadModel
    users: Users
    tokens: TokenIssuer
    placements: RecentPlacements = field(default_factory=RecentPlacements)
    request_ids: Iterator[str] = field(default_factory=lambda: unique_ids(uuid.uuid4().hex[:16]))

    def symbol(self, name: str) -> SymbolSpec:
        spec = self.symbols.get(name)
        if spec is None:
            raise ApiError(400, codes.INVALID_SYMBOL, f"Invalid symbol {name[:32]!r}.")
        return spec

    @functools.cached_property
    def binance(self) -> BinanceNames:
        """The contracts by their Binance names (the Binance face, ``binance/``)."""
        return BinanceNames(self.symbols)

    def request_id(self) -> str:
        return next(self.request_ids)

    @staticmethod
    def now_ns() -> int:
        return time.time_ns()

    async def send(self, user_id: int, message: Message) -> bool:
        """Put a request in the log without waiting for an answer: True once the broker has
        it, False if it is still in flight at the reply timeout; 503 if the log did not take it."""
        try:
            delivered = self.requests.produce(user_id, message)
            await asyncio.wait_for(asyncio.shield(delivered), self.settings.reply_timeout_seconds)
        except TimeoutError:
            return False
        except ConnectionError as error:
            raise _unavailable(error) from None
        return True

    async def ask(
        self,
        user_id: int,
        message: OrderRequest,
        kind: Kind,
        on_lost: Callable[[], None] | None = None,
    ) -> Outcome | None:
        """Send a request and wait for the engines' answer, all within the reply timeout:
        None when it is still in flight or unanswered then (the caller answers 202), 503 when
        the log did not take it. ``on_lost`` runs whenever the log is known not to have it,
        also after the reply."""

        def produce() -> asyncio.Future[None]:
            try:
                delivered = self.requests.produce(user_id, message)
            except ConnectionError:
                if on_lost is not None:
                    on_lost()
                raise
            if on_lost is not None:
                delivered.add_done_callback(lambda done: done.exception() and on_lost())
            return delivered

        try:
            outcome = await self.replies.ask(
                message.request_id, user_id, kind, produce, self.settings.reply_timeout_seconds
            )
        except ConnectionError as error:
            raise _unavailable(error) from None
        if outcome is not None:  # the user's next reads reflect at least the answer
            self.reads.saw(user_id, outcome.seen)
        return outcome


def unique_ids(prefix: str) -> Iterator[str]:
    """Ids unique across gateways and restarts: a random prefix per process and a count
    (uuid4 per request read the OS's random source each time: 3% of the gateway's CPU)."""
    return (f"{prefix}{n:x}" for n in itertools.count(1))


def _unavailable(error: ConnectionError) -> ApiError:
    log.warning("answered 503: %s", error)
    return ApiError(503, codes.DISCONNECTED, codes.MESSAGES[codes.DISCONNECTED])


async def gateway(request: Request) -> Gateway:
    # async: FastAPI runs a plain-def dependency on a worker thread, a thread hop per request
    return request.app.state.gateway


Gw = Annotated[Gateway, Depends(gateway)]
