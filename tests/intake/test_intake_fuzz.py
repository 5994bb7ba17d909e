"""Fuzz and property tests: thousands of mutated payloads, none crashes, none is lost."""

from __future__ import annotations

import base64
import collections
import copy
import json
import random
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winback_ml.data.loader import load_data
from winback_ml.exceptions import IntakeError
from winback_ml.intake import IntakeLedger, normalize
from winback_ml.intake.ledger import dead_letters_table, inbox_table
from winback_ml.intake.samples import make_webhook_stream

_WEIRD: list[Any] = [
    None,
    "",
    " ",
    0,
    -1,
    1.5,
    -1e308,
    1e308,
    2**63,
    -(2**63),
    True,
    False,
    [],
    {},
    [None],
    {"x": None},
    "null",
    "0",
    "NaN",
    "2025-13-45T99:99:99Z",
    "\u0000",
    "💥" * 20,
    "a" * 3000,
    [[[[[]]]]],
    "cus_OTHER",
    "sub_OTHER",
    "evt_1",
    "canceled",
    "SUBSCRIPTION_STATE_EXPIRED",
    1_700_000_000_000,
    100,
]


def _weird(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(_WEIRD))


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if len(prefix) > 12:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_paths(v, prefix + (i,)))
    return out


def _set(obj: Any, path: tuple, value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    if delete and isinstance(cur, dict):
        cur.pop(path[-1], None)
    else:
        cur[path[-1]] = value
    return obj


def _mutate_json(doc: Any, rng: random.Random) -> Any:
    doc = json.loads(json.dumps(doc))
    for _ in range(rng.randint(1, 3)):
        paths = _paths(doc)
        path = rng.choice(paths)
        op = rng.random()
        if op < 0.3:
            doc = _set(doc, path, None, delete=True) if path else doc
        elif op < 0.8:
            doc = _set(doc, path, _weird(rng))
        else:
            nested = [[[[[[[[[[_weird(rng)]]]]]]]]]] if rng.random() < 0.1 else _weird(rng)
            doc = _set(doc, path, {"deep": nested})
    return doc


def mutate(provider: str, body: bytes, rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.15:  # byte-level damage
        b = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if r < 0.22:
        return body[: rng.randrange(max(1, len(body)))]
    doc = json.loads(body)
    if provider == "google" and rng.random() < 0.4:
        msg = doc["notification"]["message"]
        inner = json.loads(base64.b64decode(msg["data"]))
        msg["data"] = base64.b64encode(json.dumps(_mutate_json(inner, rng)).encode()).decode()
        return json.dumps(doc).encode()
    if provider == "apple" and rng.random() < 0.4:
        h, p, s = doc["signedPayload"].split(".")
        inner = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        p2 = (
            base64.urlsafe_b64encode(json.dumps(_mutate_json(inner, rng)).encode())
            .rstrip(b"=")
            .decode()
        )
        doc["signedPayload"] = f"{h}.{p2}.{s}"
        return json.dumps(doc).encode()
    return json.dumps(_mutate_json(doc, rng)).encode()


@pytest.fixture(scope="module")
def corpus():
    bodies, _ = make_webhook_stream(60, seed=23)
    return bodies


def test_normalize_never_crashes_on_20000_mutations(corpus):
    rng = random.Random(0)
    kinds = collections.Counter()
    for _ in range(20_000):
        provider, body = rng.choice(corpus)
        bad = mutate(provider, body, rng)
        try:
            n = normalize(provider, bad)
        except IntakeError as e:
            assert str(e) and str(e).startswith(provider), str(e)
            kinds["rejected"] += 1
        else:
            kinds["normalised"] += 1
            for e in n.events:
                assert e["event_id"] and e["customer_id"] and e["subscription_id"]
    assert (
        kinds["rejected"] > 5_000 and kinds["normalised"] > 1_000
    )  # the mutator bites, and not always


@pytest.mark.slow
def test_ledger_takes_thousands_of_mutated_payloads_and_loses_none(tmp_path, corpus):
    rng = random.Random(1)
    inputs: list[tuple[str, bytes]] = []
    for p, b in corpus:
        inputs.append((p, b))
    while len(inputs) < 2500:
        p, b = rng.choice(corpus)
        r = rng.random()
        if r < 0.15:
            inputs.append((p, b))  # exact re-delivery
        else:
            inputs.append((p, mutate(p, b, rng)))
    rng.shuffle(inputs)
    url = f"sqlite:///{tmp_path}/fuzz.db"
    led = IntakeLedger(url)
    outcomes = [led.ingest(p, b, label=f"#{i}") for i, (p, b) in enumerate(inputs)]
    # count in = count out, each with a known fate and, when rejected, a reason
    assert len(outcomes) == len(inputs)
    fates = collections.Counter(o.status for o in outcomes)
    assert set(fates) <= {"accepted", "duplicate", "dead_lettered"}
    for o in outcomes:
        if o.status != "accepted":
            assert o.reason, o
        if o.status == "dead_lettered":
            assert o.kind in {
                "malformed",
                "missing_field",
                "unknown_type",
                "invalid",
                "conflict",
                "unknown_subscription",
                "signature",
                "oversized",
            }, o
    assert fates["accepted"] > 100 and fates["dead_lettered"] > 100 and fates["duplicate"] > 100
    # every distinct body is in the inbox, none left unprocessed
    distinct = {(p, b) for p, b in inputs}
    with led.engine.connect() as conn:
        statuses = collections.Counter(conn.execute(sa.select(inbox_table.c.status)).scalars())
        open_dl = conn.execute(
            sa.select(sa.func.count())
            .select_from(dead_letters_table)
            .where(dead_letters_table.c.status == "open")
        ).scalar()
    assert sum(statuses.values()) == len(distinct)
    assert statuses["received"] == 0
    assert statuses["dead_lettered"] == open_dl
    # and whatever got in still meets the data contract
    data = load_data(url)
    assert len(data.events) > 0


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), value=_json)
def test_any_json_value_anywhere_is_handled(corpus, data, value):
    provider, body = data.draw(st.sampled_from(corpus))
    doc = json.loads(body)
    path = data.draw(st.sampled_from(_paths(doc)))
    bad = json.dumps(_set(doc, path, value)).encode()
    try:
        n = normalize(provider, bad)
    except IntakeError as e:
        assert str(e)
    else:
        assert all(isinstance(e["event_id"], str) for e in n.events)
