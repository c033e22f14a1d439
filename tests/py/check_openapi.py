"""Checks Lobby's OpenAPI document and real answers against it.

Usage: check_openapi.py <document.json> <answers.json>

The document must be a valid OpenAPI 3.1 document (openapi-spec-validator).
Each answer ({"path", "method", "status", "body"}) must be one the document
lists for that operation, with a body its schema accepts (JSON Schema
2020-12, which OpenAPI 3.1 schemas are). Prints one line per problem and
exits 1 if there is any.
"""

import json
import re
import sys

import jsonschema
from openapi_spec_validator import validate


def operation_of(document, path, method):
    """The operation whose path template `path` fills, the exact one first."""
    paths = document["paths"]
    if path in paths:
        return paths[path].get(method)
    for template, item in paths.items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return item.get(method)
    return None


def main() -> int:
    with open(sys.argv[1]) as f:
        document = json.load(f)
    with open(sys.argv[2]) as f:
        answers = json.load(f)
    validate(document)
    problems = []
    for a in answers:
        operation = operation_of(document, a["path"], a["method"])
        if operation is None:
            problems.append(f"{a['method']} {a['path']}: not in the document")
            continue
        response = operation["responses"].get(str(a["status"]))
        if response is None:
            problems.append(f"{a['method']} {a['path']}: status {a['status']} not documented")
            continue
        content = response.get("content", {}).get("application/json")
        if content is None:
            problems.append(
                f"{a['method']} {a['path']} {a['status']}: the document gives no JSON body for it")
            continue
        schema = content["schema"]
        # The document's components are the schema's own, so its $refs resolve.
        rooted = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "components": document.get("components", {}), "allOf": [schema]}
        errors = list(jsonschema.Draft202012Validator(rooted).iter_errors(a["body"]))
        for e in errors:
            problems.append(f"{a['method']} {a['path']} {a['status']}: {e.message}")
    for p in problems:
        print(p)
    print(f"openapi: document valid; {len(answers)} answers checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
