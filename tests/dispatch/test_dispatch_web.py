"""The unsubscribe and inbound-SMS endpoints."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pandas as pd
import sqlalchemy as sa
from dispatch_helpers import make_targets

from winback_ml.dispatch.enrol import enrol_targets
from winback_ml.dispatch.policy import get_unsubscribe_secret, make_unsubscribe_token
from winback_ml.dispatch.schema import DispatchDB, outbox
from winback_ml.dispatch.web import make_app

T0 = datetime(2025, 6, 21, 10, 0)


class ASGIClient:
    """A small synchronous wrapper over httpx's ASGI transport."""

    def __init__(self, app):
        self.app = app

    def _call(self, method, url, **kw):
        async def go():
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.request(method, url, **kw)

        return asyncio.run(go())

    def get(self, url, **kw):
        return self._call("GET", url, **kw)

    def post(self, url, **kw):
        return self._call("POST", url, **kw)


def _states(store):
    with store.engine.connect() as conn:
        return pd.read_sql(sa.select(outbox.c.customer_id, outbox.c.channel, outbox.c.state), conn)


def test_one_click_unsubscribe_and_get_changes_nothing(store_factory):
    store = store_factory(2)
    enrol_targets(store, make_targets(["c0", "c1"]), T0, holdout=0.0)
    client = ASGIClient(make_app(store))
    token = make_unsubscribe_token(get_unsubscribe_secret(DispatchDB(store)), "c0", "email", T0)
    r = client.get(f"/unsubscribe?t={token}")
    assert r.status_code == 200 and "Unsubscribe" in r.text
    assert set(_states(store)["state"]) == {"pending"}
    r = client.post(f"/unsubscribe?t={token}", content=b"List-Unsubscribe=One-Click")
    assert r.status_code == 200
    st = _states(store)
    assert set(st.query("customer_id == 'c0' and channel == 'email'")["state"]) == {"cancelled"}
    assert set(st.query("customer_id == 'c1'")["state"]) == {"pending"}
    assert client.post("/unsubscribe?t=bad.token").status_code == 400
    assert client.get("/unsubscribe?t=").status_code == 400


def test_inbound_sms_stop_answers_twiml(store_factory):
    store = store_factory(2)
    enrol_targets(store, make_targets(["c0", "c1"]), T0, holdout=0.0)
    client = ASGIClient(make_app(store))
    r = client.post("/sms/inbound", data={"From": "+4915100000001", "Body": "Stop"})
    assert r.status_code == 200 and "<Message>You are unsubscribed" in r.text
    st = _states(store)
    assert st.query("customer_id == 'c1' and channel == 'sms'")["state"].tolist() == ["cancelled"]
    r = client.post("/sms/inbound", data={"From": "+4915100000001", "Body": "hello"})
    assert r.text.endswith("<Response></Response>")
    assert client.get("/healthz").json() == {"ok": True}
