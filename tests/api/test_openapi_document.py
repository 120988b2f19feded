"""The management API's OpenAPI document is valid OpenAPI 3.1 (openapi-spec-validator) and
documents exactly the routes the app serves under /api/v1."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from gridgate.api.manage.openapi import load_document
from gridgate.app import build_app
from gridgate.settings import Settings


def test_the_document_validates() -> None:
    document = json.loads(load_document())
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_it_documents_exactly_the_served_routes() -> None:
    document = json.loads(load_document())
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    app = build_app(Settings())
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1")
        and route.method != "HEAD"
    }
    assert documented == served
