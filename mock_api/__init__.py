"""A simulator of the ad platform of ``AD_PLATFORM_CONTRACT.md``, for tests and benchmarks.

Start it with ``python -m mock_api`` (see ``mock_api/README.md``), or from
Python with :class:`mock_api.testing.MockApiServer`. The expected data of any
account-day is :func:`mock_api.dataset.expected_campaigns`.
"""
