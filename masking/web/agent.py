"""The agent's page: mask two numbers, see and manage one's own live masks.

Every call goes to the masking service through ``service_client`` (HTTP); every attempt is
recorded in ``mask_attempts`` (the supervisors' history), failures included. Refusals are
shown as 200 partials in plain words (``masking.explain``) with the typed input kept.

A call that times out may still be carried out by the service afterwards. My active masks
(polled) asks the service about this agent's recent timed-out calls, a few calls at most
per rendering, and takes in what it did (``attempts.sets_to_recheck``/``changes_to_recheck``);
a set answered 1503 for a pair whose masking the agent's own timed-out request made is
adopted on the spot. End and extend re-read the mask under a lock before recording the
answer, so two tabs acting on one mask leave one consistent record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, request, url_for
from flask_login import current_user

from masking import attempts, explain
from masking.db import write_transaction
from masking.humanize import local_time, minutes_label, parse_iso_utc, phone, time_left
from masking.models import AttemptAction, AttemptOutcome, MaskAttempt, Role
from masking.phone import PhoneNumberError, normalise
from masking.web.auth import passive, role_required
from masking.web.dashboard import nav_item
from masking.web.extensions import db, now, settings
from masking.web.htmx import is_htmx, redirect_to, render
from masking.web.service_client import ServiceProblem, call

bp = Blueprint("agent", __name__)
EVERYONE = Role.ALL
nav_item("agent.index", "Masks", *EVERYONE)

QUICK_EXPIRIES = [(15, "15 min"), (60, "1 hour"), (240, "4 hours"), (1440, "24 hours")]
EXPIRY_CHOICES = {str(minutes) for minutes, _ in QUICK_EXPIRIES} | {"custom", "until"}
DEFAULT_EXPIRY = "60"
PHONE_FIELDS = {"m1": "First number", "m2": "Second number"}


@dataclass
class MaskForm:
    """What the agent typed, kept as typed so that nothing is lost on an error."""

    m1: str = ""
    m2: str = ""
    expiry: str = DEFAULT_EXPIRY
    custom_minutes: str = ""
    until: str = ""
    event_id: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    checked: dict[str, str] = field(default_factory=dict)  # field -> normalised number

    @classmethod
    def from_request(cls) -> "MaskForm":
        values = request.form
        expiry = values.get("expiry", DEFAULT_EXPIRY)
        return cls(m1=values.get("m1", "").strip()[:64], m2=values.get("m2", "").strip()[:64],
                   expiry=expiry if expiry in EXPIRY_CHOICES else DEFAULT_EXPIRY,
                   custom_minutes=values.get("custom_minutes", "").strip()[:12],
                   until=values.get("until", "").strip()[:32], event_id=values.get("event_id", "").strip()[:255])

    def expiry_request(self) -> tuple[dict[str, Any], int | None]:
        """The expiry fields for Masking/set and the minutes asked (None for an end time).
        A form error goes to ``errors['expiry']`` (the request is then not sent)."""
        if self.expiry == "custom":
            text = self.custom_minutes
            if not text.isdecimal() or int(text) < 1:  # isdecimal: int() takes it (not '²')
                self.errors["expiry"] = "Enter the number of minutes as a whole number, 1 or more."
                return {}, None
            return {"expiry_duration": int(text)}, int(text)
        if self.expiry == "until":
            try:
                local = datetime.strptime(self.until, "%Y-%m-%dT%H:%M")
            except ValueError:
                self.errors["expiry"] = "Enter the end date and time (for example 2026-11-27 18:30)."
                return {}, None
            return {"expiry_time": local.replace(tzinfo=settings().zone).isoformat()}, None
        return {"expiry_duration": int(self.expiry)}, int(self.expiry)

    def check_phones(self) -> None:
        """Normalise what can be; when a number is missing, say so for both fields at once (the
        form is not sent: an incomplete form is not an attempt). Other refusals are the service's."""
        refused = {}
        for name in PHONE_FIELDS:
            value = getattr(self, name)
            if value:
                try:
                    self.checked[name] = normalise(value, settings().default_region)
                except PhoneNumberError as exc:
                    refused[name] = str(exc)
        if not (self.m1 and self.m2):
            for name in PHONE_FIELDS:
                if not getattr(self, name) or name in refused:
                    self.errors[name] = explain.number_problem(name, refused.get(name, "is empty"),
                                                               getattr(self, name))


def _context(**extra) -> dict:
    context = {"quick_expiries": QUICK_EXPIRIES, "form": MaskForm(), "result": None, "problem": None,
               "notice": None, "notice_is_error": False, "late_notice": None, "made_late": None,
               "now_utc": now()}  # the list offers, to extend a mask, only durations that end later
    context.update(extra)
    if "masks" not in context and not is_htmx():  # a whole page lists the masks; a partial brings its own
        context["masks"] = _my_masks()
    return context


def _my_masks():
    return attempts.active_for_user(db.session(), current_user.id, now())


@bp.get("/")
@role_required(*EVERYONE)
def index():
    late_notice = _recheck_late_answers()
    return render("agent/index.html", **_context(masks=_my_masks(), late_notice=late_notice))


@bp.post("/validate/<name>")
@role_required(*EVERYONE)
def validate_phone(name: str):
    """The inline check of one phone field, with the service's own validator."""
    if name not in PHONE_FIELDS:
        abort(404)
    value = (request.form.get(name) or "").strip()
    normalised, error = None, None
    if value:
        try:
            normalised = normalise(value, settings().default_region)
        except PhoneNumberError as exc:
            error = explain.number_problem(name, str(exc), value)
    return render("agent/_phone_check.html", "agent/_phone_check.html", name=name, value=value,
                  normalised=normalised, error=error)


@bp.post("/masks")
@role_required(*EVERYONE)
def create():
    form = MaskForm.from_request()
    form.check_phones()
    expiry, minutes = form.expiry_request()
    if form.errors:  # not sent to the service: nothing to record
        return _panel(form)
    moment = now()
    stored = {name: attempts.stored_number(getattr(form, name), settings().default_region) for name in PHONE_FIELDS}
    try:
        data = call("set", form.m1, form.m2, event_id=form.event_id or None, **expiry)
    except ServiceProblem as exc:
        problem = exc.problem
        attempts.record(db.session(), user_id=current_user.id, action=AttemptAction.SET, now=moment,
                        outcome=_outcome(problem), m1=stored["m1"], m2=stored["m2"], event_id=form.event_id,
                        requested_minutes=minutes, error_code=problem.code,
                        error_message=_message(problem))
        db.session.commit()
        if problem.code == 1503:
            adopted = _adopt_named(problem.data, stored["m1"], stored["m2"])
            if adopted is not None:  # the agent's own earlier request made it: not an error to them
                response = _panel(form, result=adopted, made_late=explain.made_late(
                    mask=adopted.mask, m1=adopted.m1, m2=adopted.m2, expires_at=adopted.expires_at,
                    zone=settings().zone, now=now()))
                response.headers["HX-Trigger"] = "masks-changed"
                return response
        explanation = _explain(problem, "set", stored["m1"], stored["m2"])
        if explanation.field:
            form.errors[explanation.field] = explanation.text
        return _panel(form, problem=explanation)

    data = data or {}
    attempt = attempts.record(
        db.session(), user_id=current_user.id, action=AttemptAction.SET, now=moment, outcome=AttemptOutcome.SUCCESS,
        m1=data.get("m1") or stored["m1"], m2=data.get("m2") or stored["m2"], mask=data.get("mask"),
        event_id=form.event_id, requested_minutes=minutes, expires_at=parse_iso_utc(data.get("expires_at")),
        masking_id=data.get("id") if isinstance(data.get("id"), int) else None)
    db.session.commit()
    fresh = MaskForm(expiry=form.expiry, custom_minutes=form.custom_minutes, until=form.until)
    response = _panel(fresh, result=attempt)
    response.headers["HX-Trigger"] = "masks-changed"
    return response


@bp.get("/masks/mine")
@role_required(*EVERYONE)
@passive
def my_masks():
    late_notice = _recheck_late_answers()
    return render("agent/index.html", "agent/_masks.html", **_context(masks=_my_masks(), late_notice=late_notice))


@bp.post("/masks/<id:attempt_id>/end")
@role_required(*EVERYONE)
def end(attempt_id: int):
    target = _own_mask(attempt_id)
    notice, is_error = _change(target, AttemptAction.UNSET, None)
    return _masks(notice, is_error)


@bp.post("/masks/<id:attempt_id>/extend")
@role_required(*EVERYONE)
def extend(attempt_id: int):
    target = _own_mask(attempt_id)
    text = (request.form.get("minutes") or "").strip()
    if not text.isdecimal() or len(text) > 9 or not 1 <= int(text) <= settings().max_expiry_minutes:
        return _masks(f"Choose how long the mask for {phone(target.mask)} should last from now.", True)
    moment = now()
    if target.expires_at and moment + timedelta(minutes=int(text)) <= target.expires_at:
        # Extend means later: the service would set the earlier end the agent did not mean.
        return _masks(f"The mask on {phone(target.mask)} already lasts until "
                      f"{local_time(target.expires_at, settings().zone, moment)} ({time_left(target.expires_at, moment)}): "
                      f"{minutes_label(int(text))} from now would end it sooner. Choose a longer time, or End now.", True)
    notice, is_error = _change(target, AttemptAction.EXTEND, int(text))
    return _masks(notice, is_error)


# ---------------------------------------------------------------- helpers

def _own_mask(attempt_id: int) -> MaskAttempt:
    target = attempts.own_set(db.session(), current_user.id, attempt_id)
    if target is None:
        abort(404)
    return target


def _change(target: MaskAttempt, action: str, minutes: int | None) -> tuple[str, bool]:
    """End or extend ``target`` at the service and record it; returns (notice, is_error).

    The row is re-read under a lock once the service has answered: another request (the same
    agent's other tab) may have ended or extended it while this one waited on the network."""
    label = phone(target.mask)
    if attempts.status(target, now()) != attempts.ACTIVE:
        return f"The mask on {label} is no longer active.", False
    moment = now()
    extra = {"expiry_duration": minutes} if minutes is not None else {}
    try:
        data = call("unset", mask=target.mask, m1=target.m1, m2=target.m2, **extra) or {}
    except ServiceProblem as exc:
        problem = exc.problem
        if problem.code == 1506:
            return _gone(target, action, minutes, moment, problem)
        attempts.record(db.session(), user_id=current_user.id, action=action, now=moment, outcome=_outcome(problem),
                        m1=target.m1, m2=target.m2, mask=target.mask, requested_minutes=minutes,
                        error_code=problem.code, error_message=_message(problem), masking_id=target.masking_id,
                        target=target)
        db.session.commit()
        return f"{label}: " + _explain(problem, action, target.m1, target.m2).text, True

    changed = (data.get("maskings") or [{}])[0]
    session = db.session()
    with write_transaction(session):
        target = attempts.reread(session, target.id, lock=True)
        if action == AttemptAction.UNSET:
            attempts.ended_by_request(target, moment, current_user.id)
            new_expiry = None
            notice = f"The mask on {label} has ended."
        else:
            new_expiry = parse_iso_utc(changed.get("expires_at")) or target.expires_at
            target.expires_at = new_expiry
            # Time left as of the answer, not of the request: the service counted from its own clock,
            # a moment after ``moment``, so a 24 h extension would otherwise read "in 1 d".
            answered = now()
            notice = (f"The mask on {label} now ends at {local_time(new_expiry, settings().zone, answered)} "
                      f"({time_left(new_expiry, answered)}).")
        attempts.record(session, user_id=current_user.id, action=action, now=moment,
                        outcome=AttemptOutcome.SUCCESS, m1=target.m1, m2=target.m2, mask=target.mask,
                        requested_minutes=minutes, expires_at=new_expiry, masking_id=target.masking_id,
                        target=target)
    return notice, False


def _gone(target: MaskAttempt, action: str, minutes: int | None, moment: datetime,
          problem: explain.Problem) -> tuple[str, bool]:
    """The service has no active masking for ``target`` (1506). If our record says it has ended
    (another tab ended it while this request waited), that is all: not an error, and not a
    failure in the history (the end that did it is there). Otherwise learn how it ended
    (Masking/get) and record it; a failed request too, unless it was an end of a masking the
    service shows ended or expired (what the agent asked for holds)."""
    label = phone(target.mask)
    session = db.session()
    already = f"The mask on {label} has already ended.", False
    current = attempts.reread(session, target.id)
    if current is None or current.ended_at is not None:
        return already
    try:
        masking = call("get", target.masking_id) if target.masking_id else None
    except ServiceProblem:
        masking = None
    with write_transaction(session):
        if not attempts.follow_missing(session, target.id, masking, now()):
            return already  # ended meanwhile, by the request that did it
        if action == AttemptAction.UNSET and masking is not None and masking.get("status") != attempts.ACTIVE:
            # The agent wanted it ended, and it is: no failure to explain. Often the agent's other
            # tab, whose success may be recorded a moment after this (ended_by_request then
            # replaces the guess "ended outside the dashboard").
            return f"{label}: " + _explain(problem, action, target.m1, target.m2).text, False
        attempts.record(session, user_id=current_user.id, action=action, now=moment, outcome=_outcome(problem),
                        m1=target.m1, m2=target.m2, mask=target.mask, requested_minutes=minutes,
                        error_code=problem.code, error_message=_message(problem), masking_id=target.masking_id,
                        target=target)
    return f"{label}: " + _explain(problem, action, target.m1, target.m2).text, True


# ---------------------------------------------------------------- calls that timed out

def _adopt(masking: dict | None) -> MaskAttempt | None:
    """Adopt ``masking`` (as the service answers it) for the current agent's timed-out set
    attempt that made it, if ``attempts.adoptable`` finds one."""
    if not isinstance(masking, dict):
        return None
    session = db.session()
    attempt = attempts.adoptable(session, current_user.id, masking)
    if attempt is None:
        return None
    with write_transaction(session):
        return attempts.adopt(session, attempt.id, masking, now())


def _adopt_named(data: dict | None, m1: str | None, m2: str | None) -> MaskAttempt | None:
    """A set answered 1503 naming a masking of the dashboard's account: if this agent has a
    timed-out set attempt for the pair, and no row knows that masking, it may be the one that
    made it. One Masking/get to see the whole masking (the 1503 names only id, mask, expiry)."""
    masking_id = (data or {}).get("id")
    session = db.session()
    if (not isinstance(masking_id, int) or isinstance(masking_id, bool) or attempts.referenced(session, masking_id)
            or not attempts.has_timed_out_set(session, current_user.id, m1, m2)):
        return None
    try:
        masking = call("get", masking_id)
    except ServiceProblem:
        return None
    return _adopt(masking)


def _recheck_late_answers() -> str | None:
    """Ask the service what became of this agent's recent calls that timed out, and take it in.

    Bounded: nothing at all unless such calls exist (one indexed query), then at most
    ``attempts.RECHECK_LIMIT`` calls to the service, and none after the first that fails (a
    slow service is not asked again and again while the page waits). Returns the words for
    the list (None: nothing new)."""
    session = db.session()
    moment = now()
    if not attempts.any_to_recheck(session, current_user.id, moment):
        return None
    budget = attempts.RECHECK_LIMIT
    adopted, changes = [], []
    try:
        for attempt in attempts.sets_to_recheck(session, current_user.id, moment, limit=budget):
            budget -= 1
            page = call("list", m1=attempt.m1, m2=attempt.m2, status="active", limit=5) or {}
            for masking in page.get("maskings") or []:
                row = _adopt(masking)
                if row is not None:
                    adopted.append(row)
        for change in attempts.changes_to_recheck(session, current_user.id, moment, limit=budget):
            target_id = change.target_id
            masking_id = session.get(MaskAttempt, target_id).masking_id
            try:
                masking = call("get", masking_id)
            except ServiceProblem as exc:
                if exc.problem.code == 1506:
                    continue  # the service does not know it (any more): nothing to learn from it
                raise
            with write_transaction(session):
                what = attempts.follow_change(session, change.id, masking, now())
            if what is not None:
                changes.append((session.get(MaskAttempt, target_id), what))
    except ServiceProblem:
        pass  # said when the agent acts; the next rendering asks again
    return explain.found_late(sets=adopted, changes=changes, zone=settings().zone, now=now())


def _outcome(problem: explain.Problem) -> str:
    return AttemptOutcome.ERROR if problem.kind == explain.SERVICE_ERROR else AttemptOutcome.UNAVAILABLE


def _message(problem: explain.Problem) -> str:
    if problem.kind == explain.SERVICE_ERROR:
        return problem.message + (f": {problem.detail}" if problem.detail else "")
    return f"{problem.kind}: {problem.detail or ''}".strip(": ")


def _explain(problem: explain.Problem, action: str, m1: str | None, m2: str | None) -> explain.Explanation:
    return explain.explain(problem, zone=settings().zone, now=now(), action=action, m1=m1, m2=m2,
                           max_minutes=settings().max_expiry_minutes,
                           timeout_seconds=current_app.config["MASKING_API_READ_TIMEOUT"])


def _panel(form: MaskForm, **extra):
    return render("agent/index.html", "agent/_panel.html", **_context(form=form, **extra))


def _masks(notice: str, is_error: bool):
    if not is_htmx():
        flash(notice, "error" if is_error else "info")
        return redirect_to(url_for("agent.index"))
    return render("agent/index.html", "agent/_masks.html", **_context(
        masks=_my_masks(), notice=notice, notice_is_error=is_error))

