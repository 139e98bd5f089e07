"""Generate the dashboard's API types (web/src/api/schema.d.ts) from the server's OpenAPI schema.

    python scripts/web_types.py          # rewrite web/src/api/schema.d.ts
    python scripts/web_types.py --check  # exit 1 when the committed file is stale

The schema comes from ``create_app`` over a throwaway SQLite path (nothing connects); the
TypeScript comes from openapi-typescript in web/node_modules (``make web`` or ``npm ci`` first).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
TYPES = WEB / "src" / "api" / "schema.d.ts"
GENERATOR = WEB / "node_modules" / "openapi-typescript" / "bin" / "cli.js"
HEADER = (
    "// Generated from the server's OpenAPI schema by scripts/web_types.py (make web-types).\n"
    "// Do not edit: a changed route changes it; tests/web/test_api_types.py checks it.\n"
)


def openapi_schema(data_dir: Path) -> dict[str, object]:
    from visionloop.config import Settings
    from visionloop.server.app import create_app

    schema: dict[str, object] = create_app(Settings(data_dir=data_dir)).openapi()
    return schema


def generate() -> str:
    """The TypeScript of the current schema."""
    with tempfile.TemporaryDirectory() as tmp:
        schema_file = Path(tmp) / "openapi.json"
        schema_file.write_text(json.dumps(openapi_schema(Path(tmp)), indent=1))
        out = Path(tmp) / "schema.d.ts"
        subprocess.run(
            ["node", str(GENERATOR), str(schema_file), "--output", str(out)],
            check=True,
            capture_output=True,
            cwd=WEB,
        )
        return HEADER + out.read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    text = generate()
    if args.check:
        if not TYPES.is_file() or TYPES.read_text() != text:
            sys.stderr.write(f"{TYPES.relative_to(ROOT)} is stale: run `make web-types`\n")
            return 1
        return 0
    TYPES.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
