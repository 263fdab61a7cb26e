"""The supervisors' overview: masks per day, failures by code, pool use, busiest agents, as SVG.

The figures come from ``masking.overview`` (plain Python, a few queries); the chart geometry
from ``masking.charts``; the templates draw it (``templates/overview/``). For htmx (the
Refresh button) only the charts are rendered.
"""
from __future__ import annotations

from flask import Blueprint, current_app

from masking import charts
from masking import overview as figures
from masking.models import Role
from masking.web.auth import role_required
from masking.web.dashboard import nav_item
from masking.web.extensions import db, now, settings
from masking.web import service_client
from masking.web.htmx import render

bp = Blueprint("overview", __name__)
ROLES = (Role.SUPERVISOR, Role.ADMIN)
nav_item("overview.index", "Overview", *ROLES)


@bp.get("/overview")
@role_required(*ROLES)
def index():
    cache = current_app.extensions.setdefault("overview_closed_days", figures.ClosedDays())
    data = figures.overview(db.session(), now(), settings().zone, cache=cache,
                            dashboard_user_ids=service_client.dashboard_user_ids())
    # End the read transaction now. A commit rather than a rollback: a rollback would expire the
    # loaded current_user, and the page would load it again to show the username.
    db.session.commit()
    return render("overview/index.html", "overview/_charts.html", data=data,
                  day_chart=charts.day_columns(data.days), failure_chart=charts.failure_bars(data.failures),
                  pool_chart=charts.pool_bars(data.pool), agent_chart=charts.agent_bars(data.busiest))
