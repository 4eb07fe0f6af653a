"""Writes the seed inputs of each fuzz target into `fuzz/corpus/<target>/`:
small valid inputs (the upstream pages' example bodies, serialized as the
server receives them), from which the fuzzer mutates its way to the rest.

Run from the repository root with the project's virtualenv
(`.venv/bin/python fuzz/seeds.py`); the committed corpus is these seeds plus
what `cargo fuzz cmin` kept of a longer run (see the Makefile's `fuzz-cmin`).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2  # noqa: E402
from batchgrpc.track.v2 import tracking_pb2  # noqa: E402
from tests.seeds import TRACK_SEED_COMMANDS  # noqa: E402

CORPUS = ROOT / "fuzz" / "corpus"


def bulk_document() -> dict[str, Any]:
    """The Klaviyo page's example body, filled in, and every part the core reads."""
    event = {
        "type": "event",
        "attributes": {
            "properties": {"item": "shoes", "tags": ["a", 1, True, None], "nested": {"n": {"n": 1.5}}},
            "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order", "service": "api"}}},
            "time": "2026-11-01T10:00:00Z",
            "value": 9.99,
            "value_currency": "USD",
            "unique_id": "order-1",
        },
    }
    profile = {
        "type": "profile",
        "id": "01H0000000000000000000000",
        "attributes": {
            "email": "sarah.mason@klaviyo-demo.com",
            "phone_number": "+15005550006",
            "external_id": "ext-1",
            "_kx": "kx-1",
            "first_name": "Sarah",
            "location": {"city": "Boston", "latitude": "42.36", "longitude": -71.06},
            "properties": {"plan": "gold"},
        },
        "meta": {"patch_properties": {"append": {"tags": "new"}, "unappend": {"tags": "old"}, "unset": "stale"}},
    }
    item = {"type": "event-bulk-create", "attributes": {"profile": {"data": profile}, "events": {"data": [event]}}}
    return {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": [item]}}}}


def bulk_seeds() -> list[bytes]:
    full = bulk_pb2.CreateEventBulkCreateJobRequest(request_id="r-1", partial_success=True)
    json_format.ParseDict(bulk_document(), full)
    small = bulk_pb2.CreateEventBulkCreateJobRequest()
    json_format.ParseDict(
        {
            "data": {
                "type": "event-bulk-create-job",
                "attributes": {
                    "events-bulk-create": {
                        "data": [
                            {
                                "type": "event-bulk-create",
                                "attributes": {
                                    "profile": {"data": {"type": "profile", "attributes": {"email": "a@b.co"}}},
                                    "events": {
                                        "data": [
                                            {
                                                "type": "event",
                                                "attributes": {
                                                    "properties": {},
                                                    "metric": {"data": {"type": "metric", "attributes": {"name": "m"}}},
                                                },
                                            }
                                        ]
                                    },
                                },
                            }
                        ]
                    }
                },
            }
        },
        small,
    )
    return [full.SerializeToString(), small.SerializeToString()]


def track_seeds() -> list[bytes]:
    seed = tracking_pb2.BatchRequest(project_token="default", request_id="r-1")
    json_format.ParseDict({"commands": TRACK_SEED_COMMANDS}, seed)
    odd = tracking_pb2.BatchRequest(project_token="default")
    json_format.ParseDict(
        {
            "commands": [
                {"name": "customers", "data": {"customer_ids": {"cookie": "null", "id": 42}, "update_timestamp": 1.5}},
                {
                    "name": "customers/events",
                    "data": {
                        "customer_ids": {"registered": "x"},
                        "event_type": "view",
                        "timestamp": "2026-01-01T00:00:00Z",
                        "properties": {"list": [1, [2, {"a": None}]]},
                    },
                },
                {"name": "anonymize", "data": {}},
            ]
        },
        odd,
    )
    return [seed.SerializeToString(), odd.SerializeToString()]


def track_single_seeds() -> list[bytes]:
    update = tracking_pb2.UpdateCustomerPropertiesRequest(
        project_token="default", customer_ids={"registered": "a@b.c"}, update_timestamp=10.5
    )
    update.properties.update({"first_name": "Marian", "nested": {"a": [1, 2]}})
    event = tracking_pb2.AddEventRequest(project_token="default", customer_ids={"registered": "a"}, event_type="buy")
    event.timestamp.string_value = "2026-01-01T00:00:00Z"
    event.properties.update({"price": 1.5})
    numeric = tracking_pb2.AddEventRequest(customer_ids={"cookie": "c1"}, event_type="view")
    numeric.timestamp.number_value = 123456.78
    return [update.SerializeToString(), event.SerializeToString(), numeric.SerializeToString()]


SEEDS: dict[str, list[bytes]] = {
    "delimited": [
        b"id,email,event_name\n1,ann@example.com,signup\n2,nope,\n",
        b'a,b\n"x, ""quoted""",2\r\n"multi\nline",3\n',
        b"a|b|c\n1|2|3\n",
    ],
    "json": [
        b'[{"id": 1, "email": "a@b.co", "tags": ["x"], "n": {"m": 1.5}}, {"id": 2}]',
        b'{"id": 1, "event_name": "e"}\n{"id": 2, "s": "\\u00e9\\n"}\n',
    ],
    "rules": [b"ann@example.com", b"2026-01-01T00:00:00Z", b"123", b"-1.5e3", b"true", b"1970-01-01 00:00:00+02:00"],
    "track": track_seeds(),
    "track_single": track_single_seeds(),
    "bulk": bulk_seeds(),
}


def main() -> None:
    for target, inputs in SEEDS.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            # Named as libFuzzer names its units: the SHA-1 of the content.
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{target}: {len(inputs)} seeds in {folder.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
