"""Schemathesis hooks for the gateway's contract test (tests/tests/openapi.rs).

NDJSON request bodies (`POST /v1/events` and `POST /v1/events/import` accept
`application/x-ndjson`): an event, or a list of events, is written one JSON document per
line; a generated string is sent as it is.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")
