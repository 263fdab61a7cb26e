"""The benchmark's yardstick: a bare JSON endpoint, served exactly like the real app.

    gunicorn --config gunicorn.conf.py --pythonpath bench bare_app:create_app()

It does what every API call must do anyway (read the POST body as JSON, answer a small
compact JSON object with the same headers) and nothing else: no database, no phone-number
parsing, no authentication. The ratio of the real `set` throughput to this one is the
cost of the masking work itself on top of Flask and gunicorn.
"""
from __future__ import annotations

import json

from flask import Flask, Response, request

HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PATCH, DELETE",
    "Access-Control-Allow-Headers": "X-Requested-With, content-type",
    "Access-Control-Allow-Credentials": "true",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/v2/bench/bare")
    def bare():
        body = json.loads(request.get_data() or b"{}")
        payload = {"status": "success", "message": "ok",
                   "data": {"m1": body.get("m1"), "m2": body.get("m2"), "eventId": body.get("eventId")}}
        response = Response(json.dumps(payload, separators=(",", ":")),
                            content_type="application/json; charset=utf-8")
        response.headers.update(HEADERS)
        return response

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
