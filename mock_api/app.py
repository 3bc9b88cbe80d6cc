"""The FastAPI application: the contract's endpoints and, on request, the operator endpoints."""

from collections.abc import Awaitable, Callable
from functools import partial
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mock_api.config import Endpoint, FaultSettings, FaultSettingsPatch
from mock_api.dataset import parse_day
from mock_api.responses import ResponseScriptPatch
from mock_api.schemas import (
    CampaignPage,
    ErrorBody,
    Health,
    RateLimitedBody,
    SyncRequest,
    SyncResult,
    TokenResponse,
    UnauthorizedBody,
)
from mock_api.simulator import ApiError, Simulator

RECORD_SCOPE_KEY = "mock_api.record"
ADMIN_PREFIX = "/__admin"
MAX_PAGE = 1_000_000
JSON = "application/json"

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": UnauthorizedBody, "description": "Missing, unknown or expired credentials."}
}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid parameter or body; the message names it."}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "Injected transient fault, or a hang that ended server-side."}
}
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": RateLimitedBody,
        "description": "The account's sliding window is full.",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait (absent with --upstream-quirks).",
                "schema": {"type": "integer"},
            }
        },
    }
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "The account has no campaign with this id."}
}


class BearerAuthorization(HTTPBearer):
    """Publishes Bearer auth in the schema and hands over the raw header for the simulator to judge."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.headers.get("Authorization")


class BasicAuthorization(HTTPBasic):
    """Publishes Basic auth in the schema and hands over the raw header for the simulator to judge."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.headers.get("Authorization")


def endpoint_of(path: str) -> str:
    """Return the counter label of a request path."""
    if path == "/auth/token":
        return "token"
    if path == "/api/campaigns":
        return "list"
    if path.startswith("/api/campaigns/") and path.endswith("/sync"):
        return "sync"
    if path == "/health":
        return "health"
    return "other"


async def until_disconnected(receive: Receive) -> None:
    """Return once the client has closed the connection."""
    while (await receive())["type"] != "http.disconnect":
        pass


class RequestRecorder:
    """ASGI middleware that logs and counts every request outside ``/__admin/``."""

    def __init__(self, app: ASGIApp, simulator: Simulator) -> None:
        self.app = app
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
        record = self.simulator.start_record(scope["method"], path, endpoint_of(scope["path"]))
        scope[RECORD_SCOPE_KEY] = record

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException:
            record.status = record.status or int(HTTPStatus.INTERNAL_SERVER_ERROR)
            raise
        finally:
            self.simulator.finish_record(record)


def describe_validation_error(errors: list[dict[str, Any]]) -> str:
    """Turn FastAPI's first validation error into one sentence naming the parameter."""
    if not errors:
        return "The request is invalid."
    error = errors[0]
    location = [str(part) for part in error.get("loc", ())]
    source, names = (location[0], location[1:]) if location else ("request", [])
    if error.get("type") == "json_invalid":
        return f"The body is not valid JSON: {error.get('msg', 'invalid JSON')}."
    if source == "body":
        subject = f"Body field {'.'.join(names)!r}" if names else "The body is invalid"
    else:
        subject = f"{source.capitalize()} parameter {'.'.join(names)!r}"
    return f"{subject}: {error.get('msg', 'invalid value')}."


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message = describe_validation_error(list(exc.errors()))
        return JSONResponse({"error": "Bad request", "message": message}, status_code=400)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        body = {"error": HTTPStatus(exc.status_code).phrase, "message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def unexpected_error(_: Request, __: Exception) -> Response:
        body = {"error": "Internal server error", "message": "The simulator failed; see its log."}
        return JSONResponse(body, status_code=500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


def _platform_router(simulator: Simulator) -> APIRouter:
    router = APIRouter()
    bearer = BearerAuthorization(description="Token from POST /auth/token.")
    basic = BasicAuthorization(description="base64(email:password) of the account.")

    def gate(endpoint: Endpoint, request_key: Callable[[Request], str]) -> Callable[..., Awaitable[str]]:
        async def admitted_account(
            request: Request,
            authorization: Annotated[str | None, Security(bearer)],
            client_id: Annotated[
                str | None,
                Header(alias="X-Client-ID", description="Account the request is for; must be the token's."),
            ] = None,
        ) -> str:
            return await simulator.admit_api_request(
                endpoint,
                authorization=authorization,
                client_id=client_id,
                request_key=request_key(request),
                record=request.scope[RECORD_SCOPE_KEY],
                client_gone=partial(until_disconnected, request.receive),
            )

        return admitted_account

    def list_key(request: Request) -> str:
        query = request.query_params
        return f"page={query.get('page', '1')}&limit={query.get('limit', '10')}&date={query.get('date', '')}"

    def sync_key(request: Request) -> str:
        return str(request.path_params.get("campaign_id", ""))

    @router.get("/health", response_model=Health, tags=["platform"])
    async def health() -> dict[str, Any]:
        """Liveness; needs no token and is never rate-limited or faulted."""
        return simulator.health()

    @router.post(
        "/auth/token",
        response_model=TokenResponse,
        responses={**UNAUTHORIZED, **UNAVAILABLE},
        tags=["platform"],
    )
    async def issue_token(request: Request, authorization: Annotated[str | None, Security(basic)]) -> dict[str, Any]:
        """Exchange an account's Basic credentials for a Bearer token valid for that account only."""
        return await simulator.issue_token(
            authorization, request.scope[RECORD_SCOPE_KEY], partial(until_disconnected, request.receive)
        )

    @router.get(
        "/api/campaigns",
        response_model=CampaignPage,
        responses={**BAD_REQUEST, **UNAUTHORIZED, **RATE_LIMITED, **UNAVAILABLE},
        tags=["platform"],
    )
    async def list_campaigns(
        account_id: Annotated[str, Depends(gate("list", list_key))],
        page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="1-based page number.")] = 1,
        limit: Annotated[
            int, Query(ge=1, le=simulator.config.max_page_size, description="Campaigns per page.")
        ] = 10,
        day: Annotated[
            str | None,
            Query(
                alias="date",
                pattern=r"^\d{4}-\d{2}-\d{2}$",
                description="Day of the metrics, YYYY-MM-DD; today (UTC) when absent.",
                json_schema_extra={"format": "date"},
            ),
        ] = None,
    ) -> Response:
        """List the account's campaigns with their metrics for one day, a page at a time."""
        try:
            resolved = None if day is None else parse_day(day)
        except ValueError:
            raise ApiError(400, "Bad request", f"Query parameter 'date': {day!r} is not a calendar day.") from None
        body = simulator.campaigns_page(account_id, page, limit, resolved)
        scripted = simulator.scripted_answer(account_id, page, body)
        if scripted is not None:
            return Response(scripted.body, status_code=scripted.status, media_type=scripted.media_type)
        return Response(body, media_type=JSON)

    @router.post(
        "/api/campaigns/{campaign_id}/sync",
        response_model=SyncResult,
        responses={**BAD_REQUEST, **UNAUTHORIZED, **NOT_FOUND, **RATE_LIMITED, **UNAVAILABLE},
        tags=["platform"],
    )
    async def sync_campaign(
        campaign_id: Annotated[str, Path(description="Campaign id, e.g. campaign_1.")],
        body: SyncRequest,
        account_id: Annotated[str, Depends(gate("sync", sync_key))],
    ) -> dict[str, Any]:
        """Sync one campaign; slow on purpose."""
        return await simulator.sync_campaign(account_id, campaign_id, body.campaign_id)

    return router


def _admin_router(simulator: Simulator) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["admin"])

    @router.post("/reset")
    async def reset() -> dict[str, str]:
        """Forget windows, tokens, counters, fault attempts and the request log."""
        simulator.reset()
        return {"status": "reset"}

    @router.get("/counters")
    async def counters() -> dict[str, Any]:
        """Requests by account, endpoint and status, and the totals of 429s, hangs and tokens."""
        return simulator.stats.counters()

    @router.get("/requests")
    async def requests() -> list[dict[str, Any]]:
        """The finished requests in arrival order (no headers, no bodies)."""
        return simulator.stats.log()

    @router.get("/tokens")
    async def tokens() -> list[str]:
        """Every token issued since the last reset, for secret-leak tests."""
        return simulator.tokens.issued_values()

    @router.get("/faults", response_model=FaultSettings)
    async def faults() -> FaultSettings:
        """The fault settings in force."""
        return simulator.faults

    @router.put("/faults", response_model=FaultSettings, responses=BAD_REQUEST)
    async def change_faults(patch: FaultSettingsPatch) -> FaultSettings:
        """Change some fault settings now; absent fields keep their value."""
        try:
            simulator.faults = simulator.faults.patched(patch)
        except ValidationError as exc:
            raise ApiError(400, "Bad request", describe_validation_error(_body_errors(exc))) from None
        return simulator.faults

    @router.get("/responses")
    async def responses() -> dict[str, Any]:
        """The scripted bad answers of the list endpoint, with the requests each has caught."""
        return simulator.responses.describe()

    @router.put("/responses", responses=BAD_REQUEST)
    async def script_responses(script: ResponseScriptPatch) -> dict[str, Any]:
        """Replace the scripted bad answers of the list endpoint (an empty list removes them)."""
        simulator.responses.replace(script.list)
        return simulator.responses.describe()

    return router


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]


def _publish_openapi(app: FastAPI) -> None:
    """Publish a schema without FastAPI's 422 responses: the simulator answers 400 instead."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path_item in schema["paths"].values():
                for operation in path_item.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(simulator: Simulator) -> FastAPI:
    """Build the ASGI application serving ``simulator`` (built with ``Simulator(config)``)."""
    app = FastAPI(
        title="Ad platform simulator",
        version="1.0.0",
        description="Simulates the ad platform of AD_PLATFORM_CONTRACT.md, faults included.",
        strict_content_type=False,
    )
    app.state.simulator = simulator
    app.include_router(_platform_router(simulator))
    if simulator.config.admin:
        app.include_router(_admin_router(simulator))
    _install_error_handlers(app)
    app.add_middleware(RequestRecorder, simulator=simulator)
    _publish_openapi(app)
    return app
