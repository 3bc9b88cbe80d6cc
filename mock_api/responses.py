"""Scripted bad answers of the campaign list, to prove that a client rejects each one by name.

An operator installs rules with ``PUT /__admin/responses``. A list request
that passes the token, the window and the seeded faults takes the first rule
matching its account and page (spending one of the rule's ``times``) and gets
that rule's bad answer instead of the real page. Each kind breaks exactly one
promise of the contract, so a test knows which error the client must raise.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ResponseKind = Literal[
    "non_json",
    "html",
    "missing_field",
    "wrong_type",
    "negative_metric",
    "null_id",
    "empty_id",
    "duplicate_id",
    "total_mismatch",
    "has_more_forever",
    "empty_page",
    "error_body",
    "oversized_string",
]
CAMPAIGN_FIELDS = ("id", "name", "status", "budget", "impressions", "clicks", "conversions", "created_at")
PAGINATION_FIELDS = ("page", "limit", "total", "has_more")
METRIC_FIELDS = ("impressions", "clicks", "conversions")
DEFAULT_FIELDS: dict[str, str] = {
    "missing_field": "clicks",
    "wrong_type": "impressions",
    "negative_metric": "clicks",
    "oversized_string": "name",
}
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>{status} Error</title></head>\n"
    "<body><h1>{status} Error</h1><p>The server encountered a temporary error.</p></body></html>\n"
)
NON_JSON_BODY = "OK: campaigns follow\ncampaign_1;Campaign 1;active\n"
ERROR_BODY = {"error": "Internal error", "message": "The campaign store did not answer; try again later."}


class ScriptedResponse(BaseModel):
    """One rule: which list requests it catches, and the bad answer they get.

    Kinds and what they do to the real page:

    - ``non_json``: a ``text/plain`` body that is not JSON, with ``status``.
    - ``html``: an HTML error page with ``status`` (a proxy's 200 or 502).
    - ``missing_field``: campaign ``index`` loses ``field`` (default ``clicks``);
      ``pagination.<name>`` removes a pagination field instead.
    - ``wrong_type``: ``field`` (default ``impressions``) of campaign ``index``
      becomes its value as a string.
    - ``negative_metric``: ``field`` (default ``clicks``) of campaign ``index`` becomes negative.
    - ``null_id`` / ``empty_id``: campaign ``index`` gets ``"id": null`` / ``"id": ""``.
    - ``duplicate_id``: campaign ``index`` takes the id ``campaign_1`` (use it on page 2 or later).
    - ``total_mismatch``: ``pagination.total`` states ``total`` (default the real total + 1).
    - ``has_more_forever``: ``pagination.has_more`` is true, on the last page too.
    - ``empty_page``: ``data`` is empty and ``has_more`` true.
    - ``error_body``: a JSON error body (``error``, ``message``) with ``status``.
    - ``oversized_string``: ``field`` (default ``name``) of campaign ``index`` becomes ``length`` characters.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ResponseKind
    account: str | None = Field(default=None, description="Only this account's requests; any when absent.")
    page: int | None = Field(default=None, ge=1, description="Only this page; any when absent.")
    times: int | None = Field(default=None, ge=1, description="Requests the rule catches; unlimited when absent.")
    status: int = Field(default=200, ge=200, le=599, description="Status of non_json, html and error_body.")
    field: str | None = Field(
        default=None, description="Field of missing_field, wrong_type, negative_metric, oversized_string."
    )
    index: int = Field(default=0, ge=0, description="Campaign of the page (0-based) that the change hits.")
    total: int | None = Field(default=None, ge=0, description="Total stated by total_mismatch.")
    length: int = Field(default=1_000_000, ge=1, le=50_000_000, description="Characters of oversized_string.")

    @model_validator(mode="after")
    def _field_fits_kind(self) -> ScriptedResponse:
        if self.field is None:
            return self
        allowed: tuple[str, ...] = {
            "missing_field": CAMPAIGN_FIELDS + tuple(f"pagination.{name}" for name in PAGINATION_FIELDS),
            "wrong_type": CAMPAIGN_FIELDS,
            "negative_metric": METRIC_FIELDS + ("budget",),
            "oversized_string": ("id", "name", "status", "created_at"),
        }.get(self.kind, ())
        if self.field not in allowed:
            raise ValueError(f"field {self.field!r} does not apply to kind {self.kind!r}; use one of {allowed}.")
        return self

    @property
    def target_field(self) -> str:
        """The field the rule changes (its default when none is given)."""
        return self.field or DEFAULT_FIELDS.get(self.kind, "")


ScriptedRules = list[ScriptedResponse]


class ResponseScriptPatch(BaseModel):
    """Body of ``PUT /__admin/responses``: the rules of the list endpoint, first match wins."""

    model_config = ConfigDict(extra="forbid")

    list: ScriptedRules = Field(default_factory=list)


class ScriptError(ValueError):
    """A rule cannot apply to the page it caught (e.g. its campaign index is past the page's end)."""


@dataclass(frozen=True)
class RawAnswer:
    """An answer to send as is."""

    status: int
    media_type: str
    body: bytes


class ResponseScript:
    """The installed rules and how many requests each may still catch; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[ScriptedResponse] = []
        self._left: list[int | None] = []
        self._caught: list[int] = []

    def replace(self, rules: list[ScriptedResponse]) -> None:
        """Install ``rules`` in place of the current ones (an empty list removes all)."""
        with self._lock:
            self._rules = list(rules)
            self._left = [rule.times for rule in rules]
            self._caught = [0] * len(rules)

    def describe(self) -> dict[str, Any]:
        """Return the rules with the requests each has caught, for ``GET /__admin/responses``."""
        with self._lock:
            return {
                "list": [
                    {**rule.model_dump(), "caught": caught}
                    for rule, caught in zip(self._rules, self._caught, strict=True)
                ]
            }

    def take(self, account_id: str, page: int) -> ScriptedResponse | None:
        """Return the first live rule matching the request, spending one of its times; ``None`` if none does."""
        with self._lock:
            for position, rule in enumerate(self._rules):
                left = self._left[position]
                if left == 0:
                    continue
                if rule.account not in (None, account_id) or rule.page not in (None, page):
                    continue
                if left is not None:
                    self._left[position] = left - 1
                self._caught[position] += 1
                return rule
            return None


def render(rule: ScriptedResponse, real_page: bytes) -> RawAnswer:
    """Return the bad answer ``rule`` makes of ``real_page`` (the JSON body the request would have got)."""
    if rule.kind == "non_json":
        return RawAnswer(rule.status, "text/plain; charset=utf-8", NON_JSON_BODY.encode())
    if rule.kind == "html":
        return RawAnswer(rule.status, "text/html; charset=utf-8", HTML_PAGE.format(status=rule.status).encode())
    if rule.kind == "error_body":
        return RawAnswer(rule.status, "application/json", json.dumps(ERROR_BODY).encode())
    document = json.loads(real_page)
    _MUTATIONS[rule.kind](document, rule)
    return RawAnswer(200, "application/json", json.dumps(document, ensure_ascii=False).encode())


def _campaign(document: dict[str, Any], rule: ScriptedResponse) -> dict[str, Any]:
    campaigns: list[dict[str, Any]] = document["data"]
    if rule.index >= len(campaigns):
        raise ScriptError(f"the page has {len(campaigns)} campaigns, no campaign at index {rule.index}")
    return campaigns[rule.index]


def _missing_field(document: dict[str, Any], rule: ScriptedResponse) -> None:
    name = rule.target_field
    if name.startswith("pagination."):
        document["pagination"].pop(name.removeprefix("pagination."))
    else:
        _campaign(document, rule).pop(name)


def _wrong_type(document: dict[str, Any], rule: ScriptedResponse) -> None:
    campaign = _campaign(document, rule)
    campaign[rule.target_field] = str(campaign[rule.target_field])


def _negative_metric(document: dict[str, Any], rule: ScriptedResponse) -> None:
    campaign = _campaign(document, rule)
    campaign[rule.target_field] = -abs(campaign[rule.target_field]) - 1


def _null_id(document: dict[str, Any], rule: ScriptedResponse) -> None:
    _campaign(document, rule)["id"] = None


def _empty_id(document: dict[str, Any], rule: ScriptedResponse) -> None:
    _campaign(document, rule)["id"] = ""


def _duplicate_id(document: dict[str, Any], rule: ScriptedResponse) -> None:
    _campaign(document, rule)["id"] = "campaign_1"


def _total_mismatch(document: dict[str, Any], rule: ScriptedResponse) -> None:
    pagination = document["pagination"]
    pagination["total"] = rule.total if rule.total is not None else pagination["total"] + 1


def _has_more_forever(document: dict[str, Any], rule: ScriptedResponse) -> None:
    document["pagination"]["has_more"] = True


def _empty_page(document: dict[str, Any], rule: ScriptedResponse) -> None:
    document["data"] = []
    document["pagination"]["has_more"] = True


def _oversized_string(document: dict[str, Any], rule: ScriptedResponse) -> None:
    _campaign(document, rule)[rule.target_field] = "x" * rule.length


_MUTATIONS = {
    "missing_field": _missing_field,
    "wrong_type": _wrong_type,
    "negative_metric": _negative_metric,
    "null_id": _null_id,
    "empty_id": _empty_id,
    "duplicate_id": _duplicate_id,
    "total_mismatch": _total_mismatch,
    "has_more_forever": _has_more_forever,
    "empty_page": _empty_page,
    "oversized_string": _oversized_string,
}
