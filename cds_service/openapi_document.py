"""The OpenAPI document as served: self-contained, with this deployment's address in `servers`.

openapi.yaml refers to the JSON Schemas the service validates with by their file paths (one
source of truth, readable in the repository). A client fetching /openapi.yaml cannot follow
those paths, so the served copy carries each schema under `components/schemas` and every
reference points inside the document.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml

_ROOT_REF = "#/"


def _component_name(path: str) -> str:
    """`cds_service/hooks/schemas/hook-request.schema.json` → `HookRequest`."""
    stem = Path(path).name.removesuffix(".json").removesuffix(".schema")
    return "".join(part.capitalize() for part in stem.split("-"))


def _rebase(node: Any, pointer: str) -> Any:
    """The schema with its own `#/…` references re-pointed under `pointer` and `$id` dropped."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$id":
                continue  # its base URI would make clients resolve `#/…` against the schema
            if key == "$ref" and isinstance(value, str) and value.startswith(_ROOT_REF):
                out[key] = pointer + value[1:]
            else:
                out[key] = _rebase(value, pointer)
        return out
    if isinstance(node, list):
        return [_rebase(item, pointer) for item in node]
    return node


def bundle(document: dict[str, Any], root: Path) -> dict[str, Any]:
    """A copy of `document` with every file `$ref` (relative to `root`) moved into components."""
    bundled = copy.deepcopy(document)
    schemas: dict[str, Any] = bundled.setdefault("components", {}).setdefault("schemas", {})
    by_file: dict[str, str] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                if ref not in by_file:
                    name = _component_name(ref)
                    if name in schemas:
                        raise ValueError(f"two schemas would be components/schemas/{name}")
                    schema = json.loads((root / ref).read_text(encoding="utf-8"))
                    schemas[name] = _rebase(schema, f"#/components/schemas/{name}")
                    by_file[ref] = name
                node["$ref"] = f"#/components/schemas/{by_file[ref]}"
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(bundled["paths"])
    visit({key: value for key, value in bundled["components"].items() if key != "schemas"})
    return bundled


@functools.lru_cache(maxsize=4)
def served_document(path: Path, public_base_url: str) -> bytes:
    """openapi.yaml at `path`, bundled, with `servers` set to `public_base_url`, as YAML."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    bundled = bundle(document, path.parent)
    bundled["servers"] = [{"url": public_base_url, "description": "this deployment"}]
    return yaml.safe_dump(bundled, sort_keys=False, allow_unicode=True).encode("utf-8")
