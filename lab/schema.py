"""What the OpenAPI document says beyond the views' own annotations.

Every operation can answer with the one error shape, {"detail", "errors"}:
this hook declares it for each 4xx the operation can give, and the real shapes
of the lesson calls (GET /api/lessons/ is an array of lessons).
"""

ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["detail", "errors"],
}

PARAMETER = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string", "enum": ["int", "float", "choice", "bool"]},
        "default": {},
        "min": {"type": "number", "nullable": True},
        "max": {"type": "number", "nullable": True},
        "choices": {"type": "array", "items": {}, "nullable": True},
    },
    "required": ["name", "type", "default"],
}
EXPERIMENT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "title": {"type": "string"},
        "parameters": {"type": "array", "items": {"$ref": "#/components/schemas/Parameter"}},
    },
    "required": ["name", "title", "parameters"],
}
LESSON = {
    "type": "object",
    "properties": {
        "slug": {"type": "string"},
        "title": {"type": "string"},
        "summary": {"type": "string"},
        "steps": {"type": "array", "items": {"type": "object"}},
        "experiments": {"type": "array", "items": {"$ref": "#/components/schemas/Experiment"}},
    },
    "required": ["slug", "title", "summary", "steps", "experiments"],
}
PROGRESS = {
    "type": "object",
    "properties": {
        "steps": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "checkpoints": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "percent": {"type": "integer"},
    },
    "required": ["steps", "checkpoints", "percent"],
}

REASONS = {
    "400": "Invalid input, malformed or over-deep JSON",
    "403": "Not signed in (writes need a session or a token), a bad token, or read-only",
    "404": "No such object, or not yours to see",
    "405": "Method not allowed",
    "406": "Only JSON is served",
    "409": "The sandbox is not running",
    "413": "The body is larger than the lab accepts",
    "415": "The body is not JSON",
    "429": "A quota or a rate limit says no",
}
WRITES = {"post", "put", "patch", "delete"}


def _codes(path: str, method: str) -> list[str]:
    codes = ["403", "405", "406"]
    if "{" in path:
        codes.append("404")
    if method in WRITES:
        codes += ["400", "413", "415", "429"]
    if method == "post" and path.endswith(("/runs/", "/faults/")):
        codes.append("409")
    return sorted(set(codes))


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def document_errors_and_lessons(result, generator, request, public):
    """Add the error responses and the lesson shapes to the generated document."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(
        Error=ERROR, Parameter=PARAMETER, Experiment=EXPERIMENT, Lesson=LESSON, Progress=PROGRESS
    )
    error_ref = {"$ref": "#/components/schemas/Error"}
    lesson_ref = {"$ref": "#/components/schemas/Lesson"}
    progress_ref = {"$ref": "#/components/schemas/Progress"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code in _codes(path, method):
                responses.setdefault(
                    code, {"description": REASONS[code], "content": _json(error_ref)}
                )
    lessons = result.get("paths", {})
    shapes = {
        ("/api/lessons/", "get"): {"type": "array", "items": lesson_ref},
        ("/api/lessons/{slug}/", "get"): {
            "allOf": [
                lesson_ref,
                {"type": "object", "properties": {"progress": progress_ref}},
            ]
        },
        ("/api/lessons/{slug}/progress/", "post"): {
            "type": "object",
            "properties": {"progress": progress_ref},
            "required": ["progress"],
        },
    }
    for (path, method), schema in shapes.items():
        operation = lessons.get(path, {}).get(method)
        if operation is not None:
            operation["responses"]["200"] = {"description": "", "content": _json(schema)}
    return result
