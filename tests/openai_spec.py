"""Validators for OpenAI's published schemas (``../shared/specs/openai-openapi.yaml``).

The spec is OpenAPI 3.1 but still marks some fields ``nullable: true`` (an OpenAPI 3.0
keyword JSON Schema ignores), so those nodes are rewritten to ``anyOf [node, null]`` first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

# shared/ sits beside the repository (as in CI); GRIDGATE_SPECS_DIR overrides.
SPEC_PATH = (
    Path(
        os.environ.get(
            "GRIDGATE_SPECS_DIR", Path(__file__).resolve().parents[2] / "shared" / "specs"
        )
    )
    / "openai-openapi.yaml"
)
_BASE = "urn:openai-openapi"


def _without_nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _without_nullable(value) for key, value in node.items()}
    if converted.get("nullable") is True:
        del converted["nullable"]
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@dataclass(frozen=True)
class OpenAISpec:
    registry: Registry[Any]
    _validators: dict[str, Draft202012Validator] = field(default_factory=dict)

    def validator(self, name: str) -> Draft202012Validator:
        if name not in self._validators:
            self._validators[name] = Draft202012Validator(
                {"$ref": f"{_BASE}#/components/schemas/{name}"}, registry=self.registry
            )
        return self._validators[name]

    def check(self, name: str, instance: Any) -> None:
        errors = sorted(self.validator(name).iter_errors(instance), key=lambda e: e.path)
        if errors:
            details = "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
            raise AssertionError(f"not a valid {name}:\n{details}\n{instance!r}")

    def completion(self, body: Any) -> None:
        self.check("CreateChatCompletionResponse", body)

    def chunk(self, chunk: Any) -> None:
        self.check("CreateChatCompletionStreamResponse", chunk)

    def error(self, body: Any) -> None:
        self.check("ErrorResponse", body)


def load_spec() -> OpenAISpec:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open("rb") as handle:
        document = yaml.load(handle, Loader=loader)
    schemas = _without_nullable(document["components"]["schemas"])
    resource = DRAFT202012.create_resource({"components": {"schemas": schemas}})
    return OpenAISpec(Registry().with_resource(_BASE, resource))
