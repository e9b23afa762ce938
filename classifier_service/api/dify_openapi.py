"""The part of the service's OpenAPI document that Dify's custom-tool import handles.

Dify turns each operation of an imported OpenAPI document into a tool: the first ``servers``
URL plus the path is where it sends the request, ``operationId`` is the tool's name, the
operation's ``description`` tells an agent what the tool does, and each top-level property of
the JSON request body becomes one input (typed string, number or boolean; anything nested,
``anyOf`` or ``null`` arrives as a string and breaks the call). This module cuts the service's
document down to the operations meant as tools, with every ``$ref`` resolved in place, and
refuses an operation whose body Dify could not fill.

Optional number fields are exported as strings. Dify turns an empty number input into
``None`` and then calls ``int(None)`` on it, which fails the tool inside Dify before any
request is sent; a string input arrives as ``""`` (unset) or as the number's text, and the
service reads both (``schemas._number_text``).

``server_problem`` says why Dify would refuse the ``servers`` URL: its import refuses a URL
whose host is an IP address in a private, loopback or link-local range, and its SSRF proxy
(squid, in Dify's docker setup) refuses private destinations unless their hostname is
allowed (``SSRF_PROXY_ALLOW_PRIVATE_DOMAINS``), HTTPS to ports other than 443, and HTTP to
ports below 1025 other than 80. A hostname such as ``http://tier-router:8700`` passes both.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from classifier_service.errors import ExportError

#: The operations exported as Dify tools, by ``operationId``.
DIFY_OPERATIONS: tuple[str, ...] = ("route", "check_quality")

#: JSON Schema types that Dify's import turns into typed tool inputs.
SCALAR_TYPES = frozenset({"string", "number", "integer", "boolean"})


def dify_openapi(spec: Mapping[str, Any],
                 operations: Sequence[str] = DIFY_OPERATIONS) -> dict[str, Any]:
    """The subset of ``spec`` (FastAPI's ``app.openapi()``) that Dify imports as tools."""
    servers = spec.get("servers") or []
    if not servers:
        raise ExportError("the OpenAPI document has no servers entry; Dify needs one")
    found: dict[str, tuple[str, str, Mapping[str, Any]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if isinstance(op, Mapping) and op.get("operationId") in operations:
                found[op["operationId"]] = (path, method, op)
    missing = [name for name in operations if name not in found]
    if missing:
        raise ExportError(f"no operation with operationId {', '.join(missing)} in the document")
    paths: dict[str, dict[str, Any]] = {}
    for name in operations:
        path, method, op = found[name]
        paths.setdefault(path, {})[method] = _operation(spec, name, op)
    info = spec.get("info", {})
    return {
        "openapi": spec.get("openapi", "3.1.0"),
        "info": {
            "title": info.get("title", "tier-router"),
            "version": info.get("version", ""),
            "description": info.get("description", ""),
        },
        "servers": [dict(server) for server in servers],
        "paths": paths,
    }


def _operation(spec: Mapping[str, Any], name: str, op: Mapping[str, Any]) -> dict[str, Any]:
    if not op.get("description"):
        raise ExportError(f"operation {name}: no description (Dify shows it to agents)")
    out: dict[str, Any] = {"operationId": name, "summary": op.get("summary", ""),
                           "description": op["description"]}
    if op.get("parameters"):
        raise ExportError(f"operation {name}: query or path parameters are not exported")
    body = op.get("requestBody")
    if body is not None:
        content = body.get("content", {})
        if list(content) != ["application/json"]:
            raise ExportError(f"operation {name}: the request body must be application/json")
        schema = _resolve(spec, content["application/json"].get("schema", {}))
        _check_flat(name, schema)
        schema = _optional_numbers_as_text(schema)
        out["requestBody"] = {"required": bool(body.get("required")),
                              "content": {"application/json": {"schema": schema}}}
    responses: dict[str, Any] = {}
    for status, answer in op.get("responses", {}).items():
        entry: dict[str, Any] = {"description": answer.get("description", "")}
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        if status.startswith("2") and schema is not None:
            entry["content"] = {"application/json": {"schema": _resolve(spec, schema)}}
        responses[status] = entry
    out["responses"] = responses
    return out


def _check_flat(name: str, schema: Mapping[str, Any]) -> None:
    """Each body property must be one plain scalar, as Dify's import reads it."""
    if schema.get("type") != "object" or not schema.get("properties"):
        raise ExportError(f"operation {name}: the request body must be an object with properties")
    for prop_name, prop in schema["properties"].items():
        kind = prop.get("type")
        if kind not in SCALAR_TYPES or any(k in prop for k in ("anyOf", "oneOf", "allOf")):
            raise ExportError(
                f"operation {name}: body field {prop_name!r} is not a plain string, number, "
                f"integer or boolean ({prop!r}); Dify would send it as a string")


def _optional_numbers_as_text(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with each optional number or integer property typed as a string."""
    required = set(schema.get("required", []))
    properties: dict[str, Any] = {}
    for prop_name, prop in schema["properties"].items():
        if prop_name in required or prop.get("type") not in ("number", "integer"):
            properties[prop_name] = prop
            continue
        kind = "a whole number" if prop["type"] == "integer" else "a number"
        properties[prop_name] = {
            "type": "string",
            "title": prop.get("title", prop_name),
            "description": (f"{prop.get('description', '').rstrip()} Written as text "
                            f"({kind}); empty means not set.").lstrip(),
        }
    return {**schema, "properties": properties}


#: HTTP ports Dify's SSRF proxy passes besides 80 (squid's Safe_ports, as Dify ships it).
_SAFE_HTTP_PORTS = frozenset({21, 70, 80, 210, 280, 443, 488, 591, 777})


def server_problem(url: str) -> str | None:
    """Why Dify would refuse ``url`` as the custom tool's server; ``None`` when it passes."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it is not an http:// or https:// URL with a host"
    host = parts.hostname.rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if not address.is_global:
            return ("its host is a private or local IP address, which Dify refuses; its SSRF "
                    "proxy allows a private service only by hostname")
    if host == "localhost" or host.endswith(".localhost"):
        return "localhost is Dify's own container, not tier-router"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if parts.scheme == "https" and port != 443:
        return "Dify's SSRF proxy tunnels HTTPS only to port 443"
    if parts.scheme == "http" and port < 1025 and port not in _SAFE_HTTP_PORTS:
        return f"Dify's SSRF proxy refuses HTTP to port {port} (80 or 1025-65535 pass)"
    return None


def _resolve(spec: Mapping[str, Any], node: Any, seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``$ref`` replaced by a copy of what it points to."""
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                raise ExportError(f"recursive schema {ref} cannot be inlined")
            if not ref.startswith("#/"):
                raise ExportError(f"only local references can be inlined, not {ref}")
            target: Any = spec
            for part in ref[2:].split("/"):
                target = target[part]
            return _resolve(spec, copy.deepcopy(target), (*seen, ref))
        return {key: _resolve(spec, value, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, item, seen) for item in node]
    return node
