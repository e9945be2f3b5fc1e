"""A FastAPI route for the order path that skips FastAPI's per-request dependency solving.

Under load ``solve_dependencies`` cost more of the gateway's CPU than ``place_order`` itself
(a py-spy profile at 300 orders/s: 23% against 17%): it walks the dependency tree, builds
the query parameters and checks the security schemes on every request. A route whose
endpoint is ``(body: <model>, caller: Caller, gw: Gw)`` needs none of that: ``LeanRoute``
resolves exactly those three (after the app's ``limit_ip``) and validates the body with
FastAPI's own function, so answers, errors and their order are those of the stock handler,
and the OpenAPI schema still comes from the signature. Any other endpoint, and any request
that is not a JSON body (empty, another content type, malformed), gets the stock handler.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Coroutine
from typing import Any, cast

from fastapi import Request, Response
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from services.gateway.auth import current_user, limit_ip
from services.gateway.state import gateway

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
ENDPOINT_DEPENDENCIES = [current_user, gateway]  # (caller, gw), what the lean handler resolves


class LeanRoute(APIRoute):
    lean: bool = False  # whether the handler built last is the lean one (tests read it)

    def get_route_handler(self) -> Handler:
        stock = super().get_route_handler()
        route = self._effective()
        counts_ip = _lean_shape(route.dependant)
        self.lean = counts_ip is not None
        if counts_ip is None:
            return stock
        endpoint, body_fields = route.dependant.call, route.dependant.body_params
        body_name, embed = body_fields[0].name, route._embed_body_fields

        async def handler(request: Request) -> Response:
            if request.headers.get("content-type") != "application/json":
                return await stock(request)
            try:
                received = json.loads(await request.body())
            # the stock handler answers these as FastAPI does (RecursionError: a body nested
            # deeper than the parser goes, a few KB of "[")
            except (ValueError, RecursionError):
                return await stock(request)
            if counts_ip:
                await limit_ip(request)
            caller = await current_user(request, None, None)
            values, errors = await request_body_to_args(body_fields, received, embed)
            if errors:
                raise RequestValidationError(errors, body=received)
            return await endpoint(values[body_name], caller, await gateway(request))

        return handler

    def _effective(self) -> Any:
        # A route included in a router is built once per inclusion, with the includer's
        # dependencies (the app's limit_ip): FastAPI hands that context over this way only.
        context = fastapi_routing._effective_route_context_var.get()
        return context if context is not None and context.original_route is self else self


def _lean_shape(dependant: Dependant) -> bool | None:
    """None unless the route is (body, caller, gw) returning a ``Response``, with nothing
    else but perhaps ``limit_ip`` before (the app's, once the router is included); else
    whether ``limit_ip`` is there."""
    params = (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
    )
    calls = [d.call for d in dependant.dependencies]
    names = [d.name for d in dependant.dependencies if d.name is not None]
    # a route's dependant always has its endpoint to call
    signature = inspect.signature(cast("Callable[..., Any]", dependant.call), eval_str=True)
    returns = signature.return_annotation
    counts_ip = calls[:1] == [limit_ip]
    lean = (
        not any(params)
        and len(dependant.body_params) == 1
        and calls[counts_ip:] == ENDPOINT_DEPENDENCIES
        and list(signature.parameters) == [dependant.body_params[0].name, *names]
        and isinstance(returns, type)
        and issubclass(returns, Response)  # the stock handler would serialise anything else
    )
    return counts_ip if lean else None
