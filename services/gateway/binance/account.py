"""The Binance face's account endpoints (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["binance"])
