"""The committed web/openapi.json, from which the dashboard's client is generated, is current."""

from __future__ import annotations

import json
from pathlib import Path

from server.openapi_export import main, openapi_schema, render

COMMITTED = Path(__file__).resolve().parents[2] / "web" / "openapi.json"
REGENERATE = (
    "web/openapi.json is out of date with the API. Regenerate the schema and the "
    "dashboard's client, and commit both:\n"
    "  .venv/bin/python -m server.openapi_export web/openapi.json\n"
    "  npm --prefix web run generate:api"
)


def test_committed_schema_matches_the_live_one() -> None:
    assert COMMITTED.is_file(), REGENERATE
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == openapi_schema(), REGENERATE


def test_export_writes_the_schema(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render(openapi_schema())
    assert main([]) == 2
