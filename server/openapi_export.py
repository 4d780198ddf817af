"""Write the API's OpenAPI schema to a file: ``python -m server.openapi_export web/openapi.json``.

The dashboard's typed client is generated from that file (``npm --prefix web run
generate:api``), so the web build needs no Python. A test compares the committed file
with the live schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from server.app import create_app


def openapi_schema() -> dict[str, Any]:
    return create_app().openapi()


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m server.openapi_export PATH", file=sys.stderr)
        return 2
    target = Path(argv[0])
    target.write_text(render(openapi_schema()), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
