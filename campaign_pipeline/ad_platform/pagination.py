"""The campaign list: page bodies checked against the contract, and the rules that end a listing.

The platform's own simulator ignores ``total`` when it builds a page (with
``limit=100`` it says ``has_more: true`` and page 2 holds campaigns that do
not exist), so ``has_more`` alone is not trusted: the listing ends when
``has_more`` is false, a page is empty, or ``total`` distinct campaigns have
been seen, and pages that contradict ``total`` or repeat ids are errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# JSON types of the contract's campaign fields; bool is excluded from numbers explicitly.
CAMPAIGN_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "name": (str,),
    "status": (str,),
    "budget": (int, float),
    "impressions": (int,),
    "clicks": (int,),
    "conversions": (int,),
    "created_at": (str,),
}
JSON_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
_FIELD_TYPES = tuple(CAMPAIGN_FIELDS.items())


class PageShapeError(ValueError):
    """A page body does not have the contract's shape; the message names the page, campaign and field."""


class PageSequenceError(ValueError):
    """The pages contradict each other or never end; the message says how."""


@dataclass(frozen=True)
class CampaignPage:
    """One validated page of the campaign list.

    Attributes:
        number: 1-based page number.
        campaigns: The page's campaigns, each checked against the contract.
        total: Campaigns in the whole list, as this page states it.
        has_more: Whether the platform says more pages follow.
    """

    number: int
    campaigns: list[dict[str, Any]]
    total: int
    has_more: bool


def parse_campaign_page(payload: Mapping[str, Any], *, page_number: int) -> CampaignPage:
    """Check a ``GET /api/campaigns`` body and return it as a :class:`CampaignPage`.

    Raises:
        PageShapeError: when ``data`` or ``pagination`` is missing or mistyped,
            or a campaign lacks a field or has one of the wrong JSON type.
    """
    where = f"page {page_number}"
    data = payload.get("data")
    pagination = payload.get("pagination")
    if not isinstance(data, list):
        raise PageShapeError(f"{where}: the body has no 'data' list")
    if not isinstance(pagination, Mapping):
        raise PageShapeError(f"{where}: the body has no 'pagination' object")
    for key in ("page", "total"):
        if not _is_integer(pagination.get(key)) or pagination[key] < 0:
            raise PageShapeError(f"{where}: pagination.{key} is not a non-negative integer")
    if not isinstance(pagination.get("has_more"), bool):
        raise PageShapeError(f"{where}: pagination.has_more is not a boolean")
    if pagination["page"] != page_number:
        raise PageShapeError(f"{where}: the platform answered page {pagination['page']} instead")
    campaigns = [validate_campaign(record, where=f"{where}, campaign #{index}") for index, record in enumerate(data, 1)]
    return CampaignPage(
        number=page_number, campaigns=campaigns, total=pagination["total"], has_more=pagination["has_more"]
    )


def validate_campaign(record: Any, *, where: str) -> dict[str, Any]:
    """Return ``record`` if it has every contract field with the right JSON type and a non-empty id."""
    # The JSON decoder makes exactly these types, so a valid record passes on exact type checks alone
    # (bool is not int by type); anything else takes the slow path that names what is wrong.
    if type(record) is dict and all(type(record.get(name)) in types for name, types in _FIELD_TYPES):
        if record["id"].strip():
            return record
    if not isinstance(record, dict):
        raise PageShapeError(f"{where} is not a JSON object")
    identifier = record.get("id")
    if isinstance(identifier, str) and identifier:
        where = f"{where} (id {identifier!r})"
    for name, types in CAMPAIGN_FIELDS.items():
        if name not in record:
            raise PageShapeError(f"{where} has no field {name!r}")
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(JSON_TYPE_NAMES[kind] for kind in types)
            raise PageShapeError(f"{where}: field {name!r} is {_json_type(value)}, not {expected}")
    if not record["id"].strip():
        raise PageShapeError(f"{where}: field 'id' is empty")
    return record


class PageSequence:
    """Follows the pages of one listing and decides when it ends.

    Args:
        max_pages: Pages after which a listing that still has more is endless.
    """

    def __init__(self, *, max_pages: int) -> None:
        self._max_pages = max_pages
        self._first_seen_on: dict[str, int] = {}
        self._total: int | None = None
        self.finished = False

    @property
    def campaigns_seen(self) -> int:
        """Distinct campaigns seen so far."""
        return len(self._first_seen_on)

    def accept(self, page: CampaignPage) -> bool:
        """Take in the next page; return whether another page must be fetched.

        Raises:
            PageSequenceError: when the page repeats an id, contradicts
                ``total``, ends the listing short of ``total``, or the listing
                has run for ``max_pages`` pages.
        """
        if self.finished:
            raise PageSequenceError(f"page {page.number} arrived after the listing had ended")
        if self._total is not None and page.total != self._total:
            raise PageSequenceError(
                f"page {page.number} states a total of {page.total} campaigns, earlier pages {self._total}"
            )
        self._total = page.total
        for campaign in page.campaigns:
            identifier = campaign["id"]
            if identifier in self._first_seen_on:
                raise PageSequenceError(
                    f"page {page.number} repeats campaign id {identifier!r} "
                    f"(first seen on page {self._first_seen_on[identifier]})"
                )
            self._first_seen_on[identifier] = page.number
        if self.campaigns_seen > page.total:
            raise PageSequenceError(
                f"page {page.number} brings the listing to {self.campaigns_seen} distinct campaigns, "
                f"more than the stated total of {page.total}"
            )
        if not page.has_more or not page.campaigns or self.campaigns_seen == page.total:
            self.finished = True
            if self.campaigns_seen < page.total:
                raise PageSequenceError(
                    f"the listing ended on page {page.number} after {self.campaigns_seen} of the stated "
                    f"{page.total} campaigns"
                )
            return False
        if page.number >= self._max_pages:
            raise PageSequenceError(f"the listing still has more after {page.number} pages (the most allowed)")
        return True


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
