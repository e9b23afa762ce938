"""``dify_tools/openapi.json``: Dify's import rules, the live service, requests built as Dify does.

``parse_like_dify`` and ``request_like_dify`` follow what Dify's custom-tool import
(``ApiBasedToolSchemaParser.parse_openapi_to_tool_bundle``) and its API tool (the tool node's
cast of each input by its type, then ``ApiTool.do_http_request``) do with a document, so the
checks here are the ones Dify applies. ``server_refusal`` states, as understood from Dify's
parser and its SSRF proxy's squid configuration, which ``servers`` URLs a Docker deployment
of Dify cannot call.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from classifier_service.api.dify_openapi import dify_openapi, server_problem
from classifier_service.app import create_app
from classifier_service.cli import main
from classifier_service.errors import ExportError
from classifier_service.runtime import Runtime
from classifier_service.settings import Settings
from tests.doubles import running

EXPORTED = Path(__file__).resolve().parent.parent / "dify_tools" / "openapi.json"
README = EXPORTED.parent / "README.md"
OPERATION_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what Dify accepts as a tool name
TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean"}


@dataclass
class Param:
    name: str
    type: str  # Dify's tool parameter type: string, number or boolean
    required: bool
    description: str


@dataclass
class DifyTool:
    name: str
    url: str
    method: str
    description: str
    body_schema: dict[str, Any]
    params: list[Param] = field(default_factory=list)


def parse_like_dify(doc: Mapping[str, Any]) -> list[DifyTool]:
    """The tools Dify makes of ``doc``; fails where Dify's import would fail or mistype."""
    assert doc.get("servers"), "Dify refuses a document without servers"
    server = doc["servers"][0]["url"]
    tools = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "operationId" in op, f"{method} {path}: Dify would invent a long tool name"
            assert OPERATION_ID.match(op["operationId"]), op["operationId"]
            assert op.get("description"), f"{op['operationId']}: agents see no description"
            assert not op.get("parameters"), "query parameters are read as strings only"
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert "$ref" not in schema
            tool = DifyTool(op["operationId"], server + path, method, op["description"], schema)
            for name, prop in schema["properties"].items():
                # Dify reads only top-level properties; it types them from "type" alone, and
                # anything else (anyOf with null, objects, arrays) reaches the tool as a string.
                assert prop.get("type") in TYPES, (tool.name, name, prop)
                assert not {"anyOf", "oneOf", "allOf", "$ref"} & set(prop), (tool.name, name)
                assert prop.get("description"), (tool.name, name)
                tool.params.append(Param(name, TYPES[prop["type"]],
                                         name in schema.get("required", []), prop["description"]))
            names = [p.name for p in tool.params]
            assert len(names) == len(set(names)), f"{tool.name}: duplicated parameter"
            tools.append(tool)
    return tools


def request_like_dify(tool: DifyTool, values: Mapping[str, Any], base_url: str,
                      api_key: str | None = None) -> httpx.Request:
    """The HTTP request Dify's API tool sends for ``values`` (what a workflow node passes)."""
    body: dict[str, Any] = {}
    schema = tool.body_schema
    types = {p.name: p.type for p in tool.params}
    for name, prop in schema["properties"].items():
        if name in values:
            body[name] = _convert_like_dify(prop, _cast_like_dify(types[name], values[name]))
        elif name in schema.get("required", []):
            raise AssertionError(f"Dify refuses the call: missing required parameter {name}")
        elif "default" in prop:
            body[name] = prop["default"]
    headers = {"Content-Type": "application/json"}
    if api_key:  # auth type "API Key", header Authorization, prefix Bearer
        headers["Authorization"] = f"Bearer {api_key}"
    url = base_url + tool.url.removeprefix(EXPORT_SERVER)
    return httpx.Request(tool.method.upper(), url, headers=headers, content=json.dumps(body))


def _cast_like_dify(param_type: str, value: Any) -> Any:
    """The tool node's cast of an input by its Dify type: an empty number becomes None."""
    if param_type == "string":
        return "" if value is None else str(value)
    if param_type == "number":
        if isinstance(value, int | float):
            return value
        if isinstance(value, str) and value:
            return float(value) if "." in value else int(value)
        return None  # "" and None
    return value


def _convert_like_dify(prop: Mapping[str, Any], value: Any) -> Any:
    """The API tool's conversion by the body schema; a failed int("") keeps the value."""
    kind = prop.get("type")
    try:
        if kind in ("integer", "int"):
            return int(value)  # int(None) raises TypeError, which Dify does not catch
        if kind == "number":
            return float(value) if "." in str(value) else int(value)
        if kind == "string":
            return str(value)
        if kind == "boolean":
            return bool(value)
    except ValueError:
        return value
    return value


def server_refusal(url: str) -> str | None:
    """Why Dify in Docker cannot use ``url`` as a custom tool's server, or None.

    Dify's import refuses a server whose host is a private or local IP address ("points to
    a private or local network address"); its SSRF proxy then refuses every private
    destination not allowed by hostname (SSRF_PROXY_ALLOW_PRIVATE_DOMAINS), so a service
    beside Dify must be named by a hostname; localhost would be Dify's own container. The
    proxy passes plain HTTP to port 80 and 1025-65535 and tunnels HTTPS only to 443.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "not http(s)"
    host = parts.hostname.lower()
    try:
        if not ipaddress.ip_address(host).is_global:
            return "private or local IP"
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return "localhost"
    port = parts.port or {"http": 80, "https": 443}[parts.scheme]
    if parts.scheme == "https" and port != 443:
        return "https not on 443"
    if parts.scheme == "http" and port != 80 and not 1025 <= port <= 65535:
        return "http port refused"
    return None


EXPORT_SERVER = "http://tier-router:8700"


def outputs_like_dify(response: httpx.Response) -> dict[str, Any]:
    """The custom tool node's outputs, as Dify's ``ApiTool._invoke`` makes them of a response.

    A JSON object becomes a json message, which the tool node collects into its ``json``
    output, a list; the raw body becomes the ``text`` output.
    """
    body = response.json()
    return {"text": response.text, "json": [body] if isinstance(body, dict) else []}


def readme_code_node() -> Callable[[list[Any]], dict[str, Any]]:
    """The Code node that dify_tools/README.md gives for the custom tool's ``json`` output."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (code,) = [block for block in blocks if "def main(result" in block]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # Dify's Code node runs this main() with the node's inputs
    main: Callable[[list[Any]], dict[str, Any]] = namespace["main"]
    return main


@pytest.fixture(scope="module")
def live(runtime: Runtime) -> Iterator[str]:
    with running(create_app(Settings(), runtime=runtime)) as url:
        yield url


@pytest.fixture(scope="module")
def tools() -> dict[str, DifyTool]:
    return {t.name: t for t in parse_like_dify(json.loads(EXPORTED.read_text(encoding="utf-8")))}


def test_committed_export_is_what_the_command_writes(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "openapi.json"
    assert main(["openapi", "--dify", "--server-url", EXPORT_SERVER, "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == EXPORTED.read_text(encoding="utf-8"), (
        "dify_tools/openapi.json is stale: run tier-router openapi --dify "
        f"--server-url {EXPORT_SERVER} --out dify_tools/openapi.json")
    printed = capsys.readouterr()
    assert f"wrote {out}" in printed.out and printed.err == ""


def test_committed_export_names_a_server_dify_can_call() -> None:
    (server,) = json.loads(EXPORTED.read_text(encoding="utf-8"))["servers"]
    assert server_refusal(server["url"]) is None, server["url"]
    assert urlsplit(server["url"]).hostname == "tier-router"  # the README's network alias


@pytest.mark.parametrize(("url", "refusal"), [
    ("http://127.0.0.1:8700", "private or local IP"),
    ("http://172.17.0.1:8700", "private or local IP"),
    ("http://192.168.1.20:8700", "private or local IP"),
    ("http://[::1]:8700", "private or local IP"),
    ("http://169.254.169.254", "private or local IP"),
    ("http://localhost:8700", "localhost"),
    ("https://tier-router:8700", "https not on 443"),
    ("http://tier-router:25", "http port refused"),
    ("http://tier-router:8700", None),
    ("http://host.docker.internal:8700", None),
    ("https://router.example.com", None),
])
def test_the_command_warns_of_servers_dify_refuses(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    url: str, refusal: str | None) -> None:
    """The export's own check agrees with the rules above, and the command says so."""
    assert server_refusal(url) == refusal
    assert (server_problem(url) is None) == (refusal is None)
    out = tmp_path / "openapi.json"
    assert main(["openapi", "--dify", "--server-url", url, "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["servers"][0]["url"] == url
    err = capsys.readouterr().err
    if refusal is None:
        assert err == ""
    else:
        assert f"warning: Dify will refuse the server {url}: " in err
        assert "--server-url http://HOSTNAME:PORT" in err


def test_export_follows_dify_import_rules(tools: dict[str, DifyTool]) -> None:
    assert set(tools) == {"route", "check_quality"}
    route, quality = tools["route"], tools["check_quality"]
    assert route.url == f"{EXPORT_SERVER}/v1/route" and route.method == "post"
    assert quality.url == f"{EXPORT_SERVER}/v1/quality" and quality.method == "post"
    assert [(p.name, p.type, p.required) for p in route.params] == [
        ("prompt", "string", True), ("agent", "string", False),
        ("min_tier", "string", False), ("max_tier", "string", False)]
    assert [(p.name, p.type, p.required) for p in quality.params] == [
        ("prompt", "string", True), ("response", "string", True),
        ("finish_reason", "string", False), ("tier", "string", False),
        ("avg_logprob", "string", False), ("max_tokens", "string", False)]
    assert "$ref" not in EXPORTED.read_text(encoding="utf-8")


def test_export_matches_the_live_service(live: str) -> None:
    spec = httpx.get(f"{live}/openapi.json").json()
    exported = json.loads(EXPORTED.read_text(encoding="utf-8"))
    fresh = dify_openapi(spec)
    assert fresh["servers"][0]["url"].startswith("http://127.0.0.1:")
    fresh["servers"] = exported["servers"]  # the live one names its own settings' URL
    assert fresh == exported
    for path, item in exported["paths"].items():
        for method, op in item.items():
            assert spec["paths"][path][method]["operationId"] == op["operationId"]


def test_route_request_built_like_dify_succeeds(live: str, tools: dict[str, DifyTool]) -> None:
    route = tools["route"]
    with httpx.Client(timeout=10) as client:
        plain = client.send(request_like_dify(route, {"prompt": "Translate 'thank you' into "
                                                      "French."}, live))
        assert plain.status_code == 200, plain.text
        assert plain.json()["tier"] == "simple"
        # a form with every field, the empty optional ones as Dify passes them: ""
        capped = client.send(request_like_dify(route, {
            "prompt": "Design a distributed consensus protocol and prove its safety.",
            "agent": "", "min_tier": "", "max_tier": "simple"}, live))
        assert capped.status_code == 200, capped.text
        assert capped.json()["tier"] == "simple" and "max_tier" in capped.json()["adjustments"]
        bad = client.send(request_like_dify(route, {"prompt": "hi", "max_tier": "huge"}, live))
        assert bad.status_code == 422 and "huge" in bad.text


def test_check_quality_built_like_dify_succeeds(live: str,
                                                tools: dict[str, DifyTool]) -> None:
    quality = tools["check_quality"]
    with httpx.Client(timeout=10) as client:
        # numbers arrive from a workflow variable as text; Dify converts them by the schema
        unsure = client.send(request_like_dify(quality, {
            "prompt": "Why is the sky blue?", "response": "I'm not sure, I don't know.",
            "tier": "simple", "finish_reason": "stop", "avg_logprob": "-0.25",
            "max_tokens": "256"}, live))
        assert unsure.status_code == 200, unsure.text
        answer = unsure.json()
        assert answer["escalate"] is True and "uncertain" in answer["reasons"]
        assert answer["next_tier"] == "medium"
        good = client.send(request_like_dify(quality, {
            "prompt": "Is this review positive or negative? 'Loved it!'",
            "response": "Positive."}, live))
        assert good.status_code == 200 and good.json()["escalate"] is False


@pytest.mark.parametrize("empty", ["", None])
def test_check_quality_with_empty_optional_numbers_built_like_dify(
        live: str, tools: dict[str, DifyTool], empty: str | None) -> None:
    """A node whose avg_logprob and max_tokens are left empty: "" or None as Dify passes them."""
    quality = tools["check_quality"]
    values = {"prompt": "Explain the trade-offs of remote work for a startup.",
              "response": "I'm not sure.", "avg_logprob": empty, "max_tokens": empty}
    request = request_like_dify(quality, values, live)
    assert json.loads(request.content)["max_tokens"] == ""  # text, not int(None)
    with httpx.Client(timeout=10) as client:
        answer = client.send(request)
    assert answer.status_code == 200, answer.text
    assert answer.json()["escalate"] is True and "low_logprob" not in answer.json()["reasons"]
    # typed as numbers, the same empty inputs would fail inside Dify before any request
    as_number = DifyTool(quality.name, quality.url, quality.method, quality.description,
                         {**quality.body_schema, "properties": {
                             **quality.body_schema["properties"],
                             "max_tokens": {"type": "integer", "description": "cap"}}},
                         [Param(p.name, "number" if p.name == "max_tokens" else p.type,
                                p.required, p.description) for p in quality.params])
    with pytest.raises(TypeError):
        request_like_dify(as_number, values, live)


def test_full_document_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi", "--server-url", "http://gpu-box:8700"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["servers"][0]["url"] == "http://gpu-box:8700"
    assert "/v1/chat/completions" in full["paths"]
    assert main(["openapi", "--dify", "--out", str(tmp_path / "no" / "such.json")]) == 2
    assert "cannot write" in capsys.readouterr().err
    with pytest.raises(ExportError, match="servers"):
        dify_openapi({**full, "servers": []})
    nested = json.loads(json.dumps(full))
    nested["components"]["schemas"]["RouteRequest"]["properties"]["agent"] = {
        "anyOf": [{"type": "string"}, {"type": "null"}]}
    with pytest.raises(ExportError, match="'agent' is not a plain"):
        dify_openapi(nested)
    with pytest.raises(ExportError, match="no operation with operationId nope"):
        dify_openapi(full, ["route", "nope"])


def test_dify_api_key_auth_reaches_a_keyed_service(runtime: Runtime,
                                                   tools: dict[str, DifyTool]) -> None:
    """Dify's custom-tool auth "API Key", header Authorization, prefix Bearer."""
    route = tools["route"]
    app = create_app(Settings(api_keys="dify-key"), runtime=runtime)
    with running(app) as url, httpx.Client(timeout=10) as client:
        keyed = client.send(request_like_dify(route, {"prompt": "hello"}, url, "dify-key"))
        assert keyed.status_code == 200, keyed.text
        for key in (None, "wrong"):
            refused = client.send(request_like_dify(route, {"prompt": "hello"}, url, key))
            assert refused.status_code == 401 and refused.json()["detail"]


def test_readme_code_node_reads_the_custom_tool_output(live: str,
                                                        tools: dict[str, DifyTool]) -> None:
    """The README's Code node turns the route tool's output into a ``tier`` to branch on."""
    with httpx.Client(timeout=10) as client:
        response = client.send(request_like_dify(tools["route"], {
            "prompt": "Is this review positive or negative? 'Loved it!'"}, live))
    assert response.status_code == 200, response.text
    outputs = outputs_like_dify(response)
    assert readme_code_node()(outputs["json"]) == {"tier": response.json()["tier"]}
    assert json.loads(outputs["text"]) == outputs["json"][0]  # what older Dify gives instead
    assert "json.tier }}" not in README.read_text(encoding="utf-8")  # not Dify's syntax
