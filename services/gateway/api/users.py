"""Sign-up, sign-in and API keys."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from libs import codes
from services.gateway.auth import Caller
from services.gateway.errors import ApiError, unauthorized
from services.gateway.schemas import ApiKeyBody, Credentials, SigninReply, SignupReply
from services.gateway.security import hash_password, verify_password
from services.gateway.state import Gw
from services.gateway.users import EmailTaken

router = APIRouter(tags=["users"])

# Verified against when the e-mail is unknown, so a miss costs as much as a wrong password
# and response times do not reveal which e-mails have accounts.
_DECOY_HASH = hash_password("not-a-real-password-only-a-decoy")


@router.post("/signup", response_model=SignupReply)
async def signup(body: Credentials, gw: Gw) -> SignupReply:
    password_hash = await run_in_threadpool(hash_password, body.password)
    try:
        user = await run_in_threadpool(gw.users.create_user, body.email, password_hash)
    except EmailTaken:
        raise ApiError(409, codes.CONFLICT, "This e-mail is already registered.") from None
    return SignupReply(user_id=user.id, email=user.email)


@router.post("/signin", response_model=SigninReply)
async def signin(body: Credentials, gw: Gw) -> SigninReply:
    user = await run_in_threadpool(gw.users.find_by_email, body.email)
    stored = user.password_hash if user is not None else _DECOY_HASH
    matches = await run_in_threadpool(verify_password, stored, body.password)
    if user is None or not matches:
        raise unauthorized("Wrong e-mail or password.")
    return SigninReply(
        token=gw.tokens.issue(user.id),
        user_id=user.id,
        expires_in=gw.settings.token_ttl_seconds,
    )


@router.post("/api_keys")
async def create_api_key(body: ApiKeyBody, caller: Caller, gw: Gw) -> dict:
    """Create a key for signed requests. The secret is shown here once, never again."""
    key, secret = await run_in_threadpool(gw.users.create_api_key, caller, body.label)
    return {"id": key.id, "api_key": key.key, "secret": secret, "label": key.label}


@router.get("/api_keys")
async def list_api_keys(caller: Caller, gw: Gw) -> list[dict]:
    keys = await run_in_threadpool(gw.users.list_api_keys, caller)
    return [
        {
            "id": k.id,
            "api_key": k.key,
            "label": k.label,
            "created_at": k.created_at.isoformat(),
            "revoked": k.revoked_at is not None,
        }
        for k in keys
    ]


@router.delete("/api_keys/{key_id}")
async def revoke_api_key(key_id: int, caller: Caller, gw: Gw) -> dict:
    if not 0 < key_id < 2**63 or not await run_in_threadpool(
        gw.users.revoke_api_key, caller, key_id
    ):
        raise ApiError(404, codes.NO_SUCH_API_KEY, "No such API key.")
    return {"id": key_id, "revoked": True}
