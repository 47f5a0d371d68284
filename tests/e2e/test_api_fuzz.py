"""The API against its own OpenAPI schema, and hostile input (hypothesis, derandomized: the same examples
every run).

- Schema-driven: request bodies and queries generated from the schema the service publishes, sent with a
  valid token: every answer has a status the schema documents for that route, and its body validates
  against the schema of that status (jsonschema).
- Hostile: any method, path tail, body and Authorization header: never a 5xx, never a traceback, and every
  refusal is the JSON error body.

Runs the real app in-process against the real ensemble (a chroot of the shared cluster)."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from tests.helpers import in_process_api

from dcos_backup.api.models import PREFIX
from dcos_backup.catalog.ids import new_backup_id
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.scheduler import Scheduler
from dcos_backup.jobs.schedules import ScheduleStore
from dcos_backup.jobs.service import BackupService
from dcos_backup.logical import connect

pytestmark = pytest.mark.e2e
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def api(cluster, tmp_path_factory):
    chroot = f"/fuzz-{uuid.uuid4().hex[:8]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    engine = ZkEngine(cluster.zk_hosts + chroot)
    service = BackupService(LocalStorage(tmp_path_factory.mktemp("fuzz")), engine)
    scheduler = Scheduler(service, ScheduleStore(engine.client))  # its routes, not its thread: nothing runs
    with in_process_api(service, cluster.zk_hosts + chroot, scheduler) as api:
        api.raw = TestClient(api.http.app, raise_server_exceptions=False)
        api.schema = api.raw.get(f"{PREFIX}/openapi.json").json()
        yield api
    service.close()
    engine.close()
    admin.delete(chroot, recursive=True)
    admin.stop()


def check_error_shape(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:200])
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["errors"], list) and all(isinstance(e, str) for e in body["errors"]), body
        assert isinstance(body["code"], str)


# ------------------------------------------------------------------------------------------ schema-driven
# Each operation, and a status the generated requests must reach (valid input gets past validation).
OPERATIONS = [
    ("post", "/create", 200),
    ("get", "/list", 200),
    ("post", "/restore", 404),
    ("delete", "/delete", 404),
    ("post", "/schedules", 400),  # a random name and cron expression are rarely both good
    ("get", "/schedules", 200),
]


def from_schema(schema: dict, document: dict) -> st.SearchStrategy:
    """Values that match ``schema``: the part of JSON Schema the API's requests use (objects, strings with
    pattern and length, bounded numbers, booleans, arrays, anyOf, $ref). Hand-written because
    hypothesis-jsonschema 0.23 fails on current hypothesis ('many' object has no attribute 'more') and
    schemathesis 4's pytest plugin on current pytest."""
    if "$ref" in schema:
        return from_schema(document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], document)
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s, document) for s in schema.get("anyOf") or schema["oneOf"]])
    kind = schema.get("type")
    if kind == "object":
        properties = {k: from_schema(v, document) for k, v in schema.get("properties", {}).items()}
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in required},
            optional={k: v for k, v in properties.items() if k not in required},
        )
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 60)
        text = st.from_regex(schema["pattern"], fullmatch=True) if "pattern" in schema else st.text(max_size=high)
        return text.filter(lambda t: low <= len(t) <= high)
    if kind == "null":
        return st.none()
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(from_schema(schema["items"], document), max_size=min(schema.get("maxItems", 5), 5))
    if kind == "number":
        return st.floats(schema.get("minimum", 0), schema.get("maximum", 1e6), allow_nan=False)
    raise AssertionError(f"the API's requests use a schema this generator does not know: {schema}")


def in_document(schema: dict, document: dict) -> dict:
    """``schema`` with the OpenAPI document's components beside it, so that its $refs resolve."""
    return {**schema, "components": document["components"]}


def requests_of(document: dict, method: str, path: str):
    """A strategy of (json body, query) for one operation, both from the schema."""
    operation = document["paths"][PREFIX + path][method]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    bodies = from_schema(body, document) if body else st.none()
    params = {p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "query"}
    query = st.fixed_dictionaries({}, optional={k: from_schema(v, document) for k, v in params.items()})
    return st.tuples(bodies, query)


@pytest.mark.parametrize(("method", "path", "reached"), OPERATIONS)
def test_answers_follow_the_published_schema(api, method, path, reached):
    operation = api.schema["paths"][PREFIX + path][method]
    seen: set[int] = set()

    @FUZZ
    @given(request=requests_of(api.schema, method, path))
    def run(request):
        body, query = request
        headers = api.headers("bootstrapuser")
        response = api.raw.request(method.upper(), PREFIX + path, json=body, params=query, headers=headers)
        seen.add(response.status_code)
        check_error_shape(response)
        documented = operation["responses"]
        assert str(response.status_code) in documented, (response.status_code, response.text[:200], documented)
        schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
        Draft202012Validator(in_document(schema, api.schema)).validate(response.json())

    run()
    assert reached in seen, seen


# ------------------------------------------------------------------------------------------ hostile
segments = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="?#"), max_size=40)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.builds(lambda v: {"label": v}, st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text()))),
    st.builds(lambda v: {"id": v}, st.one_of(st.text(max_size=60), st.integers(), st.just(new_backup_id("abc")))),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
    st.fixed_dictionaries(
        {"name": st.text(max_size=30), "cron": st.text(max_size=30)},
        optional={"keep_last": st.one_of(st.integers(), st.text()), "keep_within": st.text(max_size=10)},
    ),
)
authorizations = st.sampled_from(["superuser", "nobody", None, "token=", "token=x.y.z", "Bearer nope", "Basic YTpi"])


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]),
    route=st.sampled_from(["create", "list", "restore", "delete", "health", "openapi.json", "schedules", ""]),
    tail=segments,
    body=bodies,
    authorization=authorizations,
)
def test_hostile_requests_never_5xx(api, method, route, tail, body, authorization):
    headers = {}
    if authorization in ("superuser", "nobody"):
        headers = api.headers("bootstrapuser" if authorization == "superuser" else "nobody")
    elif authorization is not None:
        headers = {"Authorization": authorization}
    kwargs = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    try:
        response = api.raw.request(method, f"{PREFIX}/{route}{tail}", **kwargs)
    except Exception as exc:  # an URL httpx itself refuses to build is not a server response
        if "Invalid" in type(exc).__name__ or "URL" in str(exc):
            return
        raise
    check_error_shape(response)
