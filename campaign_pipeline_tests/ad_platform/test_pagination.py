from __future__ import annotations

from typing import Any

import pytest

from campaign_pipeline.ad_platform.pagination import (
    CampaignPage,
    PageSequence,
    PageSequenceError,
    PageShapeError,
    parse_campaign_page,
    validate_campaign,
)


def campaign(number: int, **changes: Any) -> dict[str, Any]:
    record = {
        "id": f"campaign_{number}",
        "name": f"Campaign {number}",
        "status": "active",
        "budget": 1100,
        "impressions": 4471,
        "clicks": 261,
        "conversions": 22,
        "created_at": "2026-11-27T21:36:11.736Z",
    }
    record.update(changes)
    return record


def page(number: int, ids: range | list[int], *, total: int = 100, has_more: bool = True) -> CampaignPage:
    return CampaignPage(number=number, campaigns=[campaign(i) for i in ids], total=total, has_more=has_more)


def body(records: list[Any], *, page_number: int = 1, total: int = 100, has_more: bool = True) -> dict[str, Any]:
    return {"data": records, "pagination": {"page": page_number, "limit": 10, "total": total, "has_more": has_more}}


class TestParseCampaignPage:
    def test_valid_page(self) -> None:
        parsed = parse_campaign_page(body([campaign(1), campaign(2, budget=99.5)], has_more=False), page_number=1)
        assert parsed == CampaignPage(
            number=1, campaigns=[campaign(1), campaign(2, budget=99.5)], total=100, has_more=False
        )

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            ({"pagination": {}}, "page 3: the body has no 'data' list"),
            ({"data": {}, "pagination": {}}, "page 3: the body has no 'data' list"),
            ({"data": []}, "page 3: the body has no 'pagination' object"),
            (
                {"data": [], "pagination": {"page": 3, "total": "100", "has_more": True}},
                "page 3: pagination.total is not a non-negative integer",
            ),
            (
                {"data": [], "pagination": {"page": 3, "total": -1, "has_more": True}},
                "page 3: pagination.total is not a non-negative integer",
            ),
            (
                {"data": [], "pagination": {"total": 1, "has_more": True}},
                "page 3: pagination.page is not a non-negative integer",
            ),
            (
                {"data": [], "pagination": {"page": 3, "total": 1, "has_more": "yes"}},
                "page 3: pagination.has_more is not a boolean",
            ),
            (
                {"data": [], "pagination": {"page": 1, "total": 1, "has_more": True}},
                "page 3: the platform answered page 1 instead",
            ),
        ],
    )
    def test_malformed_pagination(self, payload: dict[str, Any], message: str) -> None:
        with pytest.raises(PageShapeError) as raised:
            parse_campaign_page(payload, page_number=3)
        assert str(raised.value) == message

    @pytest.mark.parametrize(
        ("record", "message"),
        [
            ("campaign_1", "page 1, campaign #2 is not a JSON object"),
            (
                {k: v for k, v in campaign(7).items() if k != "clicks"},
                "page 1, campaign #2 (id 'campaign_7') has no field 'clicks'",
            ),
            (
                campaign(7, impressions="4471"),
                "page 1, campaign #2 (id 'campaign_7'): field 'impressions' is a string, not an integer",
            ),
            (
                campaign(7, conversions=2.5),
                "page 1, campaign #2 (id 'campaign_7'): field 'conversions' is a number, not an integer",
            ),
            (
                campaign(7, clicks=True),
                "page 1, campaign #2 (id 'campaign_7'): field 'clicks' is a boolean, not an integer",
            ),
            (
                campaign(7, budget=None),
                "page 1, campaign #2 (id 'campaign_7'): field 'budget' is null, not an integer or a number",
            ),
            (campaign(7, name=["x"]), "page 1, campaign #2 (id 'campaign_7'): field 'name' is an array, not a string"),
            (campaign(7, id=7), "page 1, campaign #2: field 'id' is a number, not a string"),
            (campaign(7, id=""), "page 1, campaign #2: field 'id' is empty"),
            (campaign(7, id="   "), "page 1, campaign #2 (id '   '): field 'id' is empty"),
        ],
    )
    def test_bad_record_names_page_index_id_and_field(self, record: Any, message: str) -> None:
        with pytest.raises(PageShapeError) as raised:
            parse_campaign_page(body([campaign(1), record]), page_number=1)
        assert str(raised.value) == message

    def test_extra_fields_are_kept(self) -> None:
        record = campaign(1, currency="EUR")
        assert validate_campaign(record, where="x") == record


class TestPageSequence:
    def test_stops_when_has_more_is_false(self) -> None:
        sequence = PageSequence(max_pages=100)
        assert [sequence.accept(page(n, range(10 * n - 9, 10 * n + 1), has_more=n < 10)) for n in range(1, 11)] == [
            True
        ] * 9 + [False]
        assert sequence.campaigns_seen == 100

    def test_stops_at_total_even_if_has_more_says_otherwise(self) -> None:
        sequence = PageSequence(max_pages=100)
        assert sequence.accept(page(1, range(1, 101), has_more=True)) is False
        assert sequence.finished

    def test_stops_on_an_empty_last_page(self) -> None:
        sequence = PageSequence(max_pages=100)
        assert sequence.accept(page(1, range(1, 3), total=2, has_more=True)) is False
        sequence = PageSequence(max_pages=100)
        assert sequence.accept(page(1, [], total=0, has_more=True)) is False

    def test_repeated_id_across_pages_raises(self) -> None:
        sequence = PageSequence(max_pages=100)
        sequence.accept(page(1, range(1, 11)))
        with pytest.raises(
            PageSequenceError, match=r"page 2 repeats campaign id 'campaign_10' \(first seen on page 1\)"
        ):
            sequence.accept(page(2, range(10, 20)))

    def test_repeated_id_within_a_page_raises(self) -> None:
        with pytest.raises(
            PageSequenceError, match=r"page 1 repeats campaign id 'campaign_3' \(first seen on page 1\)"
        ):
            PageSequence(max_pages=100).accept(page(1, [1, 2, 3, 3]))

    def test_changing_total_raises(self) -> None:
        sequence = PageSequence(max_pages=100)
        sequence.accept(page(1, range(1, 11)))
        with pytest.raises(PageSequenceError, match="page 2 states a total of 120 campaigns, earlier pages 100"):
            sequence.accept(page(2, range(11, 21), total=120))

    def test_more_campaigns_than_total_raises(self) -> None:
        sequence = PageSequence(max_pages=100)
        for number in range(1, 4):
            sequence.accept(page(number, range(30 * number - 29, 30 * number + 1)))
        with pytest.raises(
            PageSequenceError,
            match="page 4 brings the listing to 120 distinct campaigns, more than the stated total of 100",
        ):
            sequence.accept(page(4, range(91, 121)))

    def test_listing_that_ends_short_of_total_raises(self) -> None:
        sequence = PageSequence(max_pages=100)
        sequence.accept(page(1, range(1, 11)))
        with pytest.raises(PageSequenceError, match="the listing ended on page 2 after 15 of the stated 100 campaigns"):
            sequence.accept(page(2, range(11, 16), has_more=False))

    def test_empty_page_short_of_total_raises(self) -> None:
        sequence = PageSequence(max_pages=100)
        sequence.accept(page(1, range(1, 11)))
        with pytest.raises(PageSequenceError, match="the listing ended on page 2 after 10 of the stated 100 campaigns"):
            sequence.accept(page(2, [], has_more=True))

    def test_listing_that_never_ends_raises_at_max_pages(self) -> None:
        sequence = PageSequence(max_pages=3)
        sequence.accept(page(1, [1], total=1000))
        sequence.accept(page(2, [2], total=1000))
        with pytest.raises(PageSequenceError, match="the listing still has more after 3 pages"):
            sequence.accept(page(3, [3], total=1000))

    def test_page_after_the_end_raises(self) -> None:
        sequence = PageSequence(max_pages=100)
        sequence.accept(page(1, range(1, 101), has_more=False))
        with pytest.raises(PageSequenceError, match="page 2 arrived after the listing had ended"):
            sequence.accept(page(2, range(101, 111)))
