"""htmx on the server, in one place: detection, partial-or-page rendering, redirects.

    from masking.web.htmx import is_htmx, render, redirect_to

    return render("agent/index.html", "agent/_panel.html", form=form)

* ``is_htmx()``: the request came from htmx (the ``HX-Request`` header, read by flask-htmx).
* ``render(page, partial, **context)``: the partial for htmx requests, the whole page
  otherwise (a browser without JavaScript, or a reload). Always ``Vary: HX-Request``.
* ``redirect_to(url)``: ``HX-Redirect`` for htmx (the browser navigates), a 303 otherwise.
* htmx 2 does not swap 4xx/5xx answers: render expected errors (a refusal of the service,
  a form error) as normal 200 partials.
"""
from __future__ import annotations

from flask import Response, make_response, redirect, render_template, request
from flask_htmx import HTMX

htmx = HTMX()


def is_htmx() -> bool:
    return bool(htmx)


def current_path() -> str:
    """The path the user is looking at: the page (HX-Current-URL) for htmx, else this request's."""
    if is_htmx() and htmx.current_url:
        from urllib.parse import urlsplit

        parts = urlsplit(htmx.current_url)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.full_path.rstrip("?") if request.query_string else request.path


def vary(response: Response) -> Response:
    response.vary.add("HX-Request")
    return response


def render(page: str, partial: str | None = None, *, status: int = 200, **context) -> Response:
    template = partial if partial and is_htmx() else page
    return vary(make_response(render_template(template, **context), status))


def redirect_to(url: str, status: int = 200) -> Response:
    """Send the browser to ``url``: HX-Redirect for htmx, 303 See Other for a plain form post."""
    if is_htmx():
        response = Response(status=status, headers={"HX-Redirect": url})
    else:
        response = redirect(url, 303)
    return vary(response)
