#!/usr/bin/env python3
"""Applies gateway/openapi-jsonapi.json to the OpenAPI document
protoc-gen-openapiv2 generated: the Klaviyo read routes are answered by the
sidecar's own JSON:API layer (gateway/internal/rest/jsonapi.go,
documents.go), not in the gRPC shapes the generator derives from the
protos, so their parameters and success bodies are described by hand, beside
that code. Run by `make generate` and tools/check-generated."""

from __future__ import annotations

import json
import sys
from pathlib import Path

FRAGMENT = Path(__file__).resolve().parents[1] / "gateway" / "openapi-jsonapi.json"


def main(target: str) -> None:
    path = Path(target)
    document = json.loads(path.read_text())
    fragment = json.loads(FRAGMENT.read_text())
    for route, verbs in fragment["paths"].items():
        for verb, override in verbs.items():
            operation = document["paths"][route][verb]
            operation["parameters"] = override["parameters"]
            operation["responses"] = {**operation["responses"], **override["responses"]}
    document["definitions"].update(fragment["definitions"])
    # The gRPC messages only these routes answered with are no longer anyone's.
    used = json.dumps(document["paths"]) + json.dumps(document["definitions"])
    for name in ("v1ListEventsResponse", "v1ListProfilesResponse"):
        if f'"#/definitions/{name}"' not in used:
            document["definitions"].pop(name, None)
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
