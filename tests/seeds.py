"""The upstream pages' example bodies (../shared/seeds), for every test that
must show they work as written."""

from __future__ import annotations

from typing import Any

#: The Bloomreach batch page's example commands, its redacted addresses
#: filled in.
TRACK_SEED_COMMANDS: list[dict[str, Any]] = [
    {"name": "system/time"},
    {
        "name": "customers",
        "command_id": "abc",
        "data": {
            "customer_ids": {"registered": "marian.galik@exponea.com"},
            "properties": {"first_name": "Marian", "last_name": "Galik"},
        },
    },
    {
        "name": "customers/events",
        "data": {
            "customer_ids": {"registered": "marian.galik@exponea.com"},
            "event_type": "purchase",
            "timestamp": 123456.78,
            "properties": {"total_price": 1234.50, "voucher_code": "KA54-548C-TEST"},
        },
    },
]
