"""Liveness and readiness: 200 once the database answers, 503 otherwise."""
import logging

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from masking.web.extensions import db

bp = Blueprint("health", __name__)
log = logging.getLogger("masking.health")


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("health check failed: %s", exc.__class__.__name__)
        return jsonify(status="error", message="database unreachable"), 503
    return jsonify(status="ok")
