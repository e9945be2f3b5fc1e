"""Everything a request handler needs, built once per process by the composition root."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from libs.messages import Message
from libs.symbols import SymbolSpec
from services.gateway import errors
from services.gateway.errors import ApiError
from services.gateway.ids import OrderIds
from services.gateway.kafka_io import ReplyListener, RequestProducer
from services.gateway.reads import ReadModel
from services.gateway.replies import Kind, Outcome
from services.gateway.security import TokenIssuer
from services.gateway.settings import GatewaySettings
from services.gateway.users import UserStore


@dataclass
class Gateway:
    settings: GatewaySettings
    symbols: dict[str, SymbolSpec]
    ids: OrderIds
    requests: RequestProducer
    replies: ReplyListener
    reads: ReadModel
    users: UserStore
    tokens: TokenIssuer

    def symbol(self, name: str) -> SymbolSpec:
        spec = self.symbols.get(name)
        if spec is None:
            raise ApiError(400, -1121, f"Invalid symbol {name[:32]!r}.")
        return spec

    @staticmethod
    def request_id() -> str:
        return uuid.uuid4().hex

    @staticmethod
    def now_ns() -> int:
        return time.time_ns()

    async def send(self, user_id: int, message: Message) -> None:
        """Put a request in the log; 503 when the broker does not take it."""
        try:
            await self.requests.send(user_id, message)
        except (ConnectionError, BufferError) as error:
            raise ApiError(503, errors.TIMEOUT, f"The exchange is unavailable: {error}") from None

    async def ask(self, user_id: int, message: Message, kind: Kind) -> Outcome | None:
        """Send a request and wait for the engines' answer; None after the reply timeout.
        The user's next reads reflect at least the answer."""
        outcome = await self.replies.ask(
            message.request_id,
            kind,
            lambda: self.send(user_id, message),
            self.settings.reply_timeout_seconds,
        )
        if outcome is not None:
            self.reads.saw(user_id, outcome.seen)
        return outcome


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway


Gw = Annotated[Gateway, Depends(gateway)]
