"""Helpers shared by the dashboard's tests (users, logging in, htmx headers, HTML checks)."""
from __future__ import annotations

import re

from masking import users
from masking.clock import utcnow
from masking.web.extensions import db

PASSWORD = "correct-horse-battery"
HX = {"HX-Request": "true"}
ROLES = ("agent", "supervisor", "admin")


def make_user(app, username: str, role: str = "agent", password: str = PASSWORD) -> int:
    with app.app_context():
        user = users.create_user(db.session(), username, password, role, utcnow())
        db.session.commit()
        return user.id


def login(client, username: str, password: str = PASSWORD, **extra):
    return client.post("/login", data={"username": username, "password": password, **extra})


def logged_in_client(app, role: str = "agent", username: str | None = None):
    username = username or f"{role}1"
    make_user(app, username, role)
    client = app.test_client()
    response = login(client, username)
    assert response.status_code == 303, response.data
    return client


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def text_of(html: str) -> str:
    """The visible text, whitespace collapsed (for asserting sentences)."""
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def assert_no_inline_code(html: str) -> None:
    """What the Content-Security-Policy would block: inline scripts, style attributes, on* handlers."""
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, f"inline script: {tag}"
    assert not re.search(r"<style\b", html), "inline <style>"
    assert not re.search(r"\sstyle\s*=", html), "style attribute"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert "hx-on" not in html and "js:" not in html, "htmx code that needs eval"
