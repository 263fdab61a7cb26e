"""Liveness and readiness: 200 once the database answers and carries this code's schema, 503 otherwise.

A database that answers but was never migrated (or is behind the code) would fail every page
and API call, so it is not ready: the 503 says which, and what to run.
"""
import logging

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from masking import readiness
from masking.web.extensions import db

bp = Blueprint("health", __name__)
log = logging.getLogger("masking.health")
_STAMPED = text("SELECT version_num FROM alembic_version")


def _schema_versions() -> readiness.SchemaVersions:
    """The revisions of the app's migrations folder, read once per app (Flask-Migrate knows the folder)."""
    versions = current_app.extensions.get("masking_schema_versions")
    if versions is None:
        versions = readiness.SchemaVersions(current_app.extensions["migrate"].directory)
        current_app.extensions["masking_schema_versions"] = versions
    return versions


@bp.get("/healthz")
def healthz():
    try:
        stamped = {row[0] for row in db.session.execute(_STAMPED)}
        db.session.rollback()
    except SQLAlchemyError as exc:
        db.session.rollback()
        if not readiness.is_missing_schema(exc):
            log.warning("health check failed: %s", exc.__class__.__name__)
            return jsonify(status="error", message="database unreachable"), 503
        stamped = None  # no alembic_version table: never migrated
    problem = _schema_versions().problem(stamped)
    if problem is not None:
        log.warning("health check failed: %s", problem)
        return jsonify(status="error", message="database not migrated", detail=problem), 503
    return jsonify(status="ok")
