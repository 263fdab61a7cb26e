// The dashboard's only script (the Content-Security-Policy allows no inline code).
// Behaviour hangs on data-* attributes through event delegation, so it also works on
// content htmx swaps in later.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  // A renewed token goes everywhere the page keeps one: forms carry it in a hidden csrf_token
  // field too, and Flask-WTF reads that field before the header.
  function setCsrfToken(token) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { meta.setAttribute("content", token); }
    var fields = document.querySelectorAll("input[name='csrf_token']");
    for (var i = 0; i < fields.length; i++) { fields[i].value = token; }
  }
  function pageUser() {
    var meta = document.querySelector('meta[name="dashboard-user"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Every htmx request carries the CSRF token in a header (Flask-WTF reads X-CSRFToken).
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // Background refreshes ([data-poll]) wait while the user is working inside that element,
  // so a refresh never pulls a select or a button from under the keyboard focus.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-poll") && event.detail.requestConfig &&
        event.detail.requestConfig.verb === "get" && elt.contains(document.activeElement)) {
      event.preventDefault();
    }
  });

  // After a swap, move the focus where the server asked (the field to fix, the copy button),
  // unless the user has put it somewhere else since the swap: the settle comes a moment
  // later, and taking the focus then would send what they are typing into another field.
  var focusAtSwap = null;
  document.addEventListener("htmx:afterSwap", function () {
    focusAtSwap = document.activeElement;
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.elt;
    var wanted = target && target.querySelector ? target.querySelector("[data-autofocus]") : null;
    if (wanted && document.activeElement === focusAtSwap) {
      wanted.focus();
    }
  });

  // A form marked data-hold-input is held while it is on its way: the answer replaces the whole
  // form with the values that were sent, so whatever is changed meanwhile would vanish without a
  // word. htmx has collected the values by "beforeSend" (they are still submitted); `disabled`
  // would throw the keyboard focus out of the field, so nothing is disabled:
  // * text, number and date fields are read-only (the browser refuses keys and pickers);
  // * radios and checkboxes ignore readOnly: clicks on them are cancelled (the mouse, a label,
  //   Space, and a radio group's arrow keys all click). They carry aria-disabled meanwhile:
  //   Chromium ignores aria-readonly on them. (No held form has a select.)
  // * the form carries aria-busy, which the stylesheet shows.
  // data-held marks what the hold changed, so the release undoes exactly that: a field read-only
  // or aria-disabled by design stays so.
  var CHOICES = "input[type='radio'], input[type='checkbox']";
  function holdInput(form, held) {
    var fields = form.querySelectorAll(held ? "input:not([type='hidden']), textarea" : "[data-held]");
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i], choice = field.matches(CHOICES);
      var attribute = choice ? "aria-disabled" : "readonly";
      if (!held) {
        field.removeAttribute(attribute);
        field.removeAttribute("data-held");
      } else if (!field.hasAttribute(attribute) && !field.disabled) {
        field.setAttribute(attribute, choice ? "true" : "");
        field.setAttribute("data-held", "");
      }
    }
    if (held) { form.setAttribute("aria-busy", "true"); } else { form.removeAttribute("aria-busy"); }
  }
  document.addEventListener("click", function (event) {
    var field = event.target;
    if (field.matches && field.matches(CHOICES) && field.hasAttribute("data-held")) {
      event.preventDefault();  // the browser puts the previous check back; no change event follows
    }
  }, true);
  document.addEventListener("htmx:beforeSend", function (event) {
    var form = event.detail.elt;
    if (form && form.hasAttribute && form.hasAttribute("data-hold-input")) { holdInput(form, true); }
  });
  // htmx ends every request with afterRequest on the form, also one that failed (network error,
  // timeout, abort) or was refused (4xx/5xx, not swapped); a swap that threw ends with onLoadError
  // instead. (After a swap, the held form is gone: the event comes from an ancestor.)
  ["htmx:afterRequest", "htmx:onLoadError"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var form = event.detail.elt;
      if (form && form.hasAttribute && form.hasAttribute("data-hold-input")) { holdInput(form, false); }
    });
  });

  // Network failures and unexpected server errors: say so instead of doing nothing.
  // `kind` "stale" marks the notice of a renewed token (below): a background poll's success
  // does not hide it, only the user's next request that goes through.
  function showProblem(text, kind) {
    var banner = document.getElementById("connection-problem");
    if (!banner) { return; }
    banner.textContent = text;
    banner.setAttribute("data-kind", kind || "");
    banner.hidden = false;
  }
  function hideProblem() {
    var banner = document.getElementById("connection-problem");
    if (banner) { banner.hidden = true; }
  }
  document.addEventListener("htmx:sendError", function () {
    showProblem("The dashboard cannot be reached. Check your network connection; what you typed is still here.");
  });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status === 403) {
      showProblem("You are not allowed to do that with your role.");
    } else if (status === 404) {
      showProblem("That item no longer exists. Reload the page to see the current state.");
    } else if (status === 503) {
      showProblem("The dashboard cannot use its database right now; nothing was saved. What you typed is still here: try again in a minute.");
    } else {
      showProblem("Something went wrong on the server (" + status + "). Try again; if it keeps happening, tell an admin.");
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var detail = event.detail, banner = document.getElementById("connection-problem");
    if (!detail.successful || tokenRenewedBy(detail.xhr)) { return; }
    if (banner && banner.getAttribute("data-kind") === "stale" && detail.requestConfig &&
        detail.requestConfig.verb === "get") { return; }
    hideProblem();
  });

  // A page whose CSRF token is stale (the user logged in again in another tab): the server
  // refused the request, so nothing happened, and answered 200 with HX-Reswap: none (nothing
  // swapped, the form keeps what was typed) and a fresh token in the "csrf-renewed" event
  // (masking/web/dashboard.py, _csrf_failed). The page takes the token, then:
  // * a press (a form's submit, a button) is NOT sent again by itself: the user is told, and
  //   presses again (the other tab may have changed their mind, and a press can do anything);
  // * a request that ran on its own (an inline check on "change") is sent again, once, by firing
  //   its event again (data-resend, then data-resent until its next answer: never twice).
  // A page of another user than the one now logged in keeps its old token: nothing is sent as
  // the new user until the page is reloaded.
  var STALE_PRESS = "Your session was renewed in another tab, so nothing was sent. " +
    "What you typed is still here: press the button again.";
  var STALE_CHECK = "Your session was renewed in another tab, so the last check did not run. " +
    "What you typed is still here: carry on.";
  function tokenRenewedBy(xhr) {
    return /"csrf-renewed"/.test((xhr && xhr.getResponseHeader("HX-Trigger")) || "");
  }
  function isPress(elt) {
    return !elt || elt.tagName === "FORM" || elt.tagName === "BUTTON";
  }
  document.addEventListener("csrf-renewed", function (event) {
    var detail = event.detail || {}, user = pageUser(), elt = detail.elt;
    if (!detail.token) { return; }
    if (user && detail.user && detail.user !== user) {
      showProblem("You are now logged in as " + detail.user + " (in another tab), so nothing was sent. " +
                  "What you typed is still here. Reload the page to go on as " + detail.user + ".", "stale");
      return;
    }
    setCsrfToken(detail.token);
    if (!isPress(elt) && !elt.hasAttribute("data-resent")) {
      elt.setAttribute("data-resend", "");  // sent again once this request is over (below)
      return;
    }
    showProblem(isPress(elt) ? STALE_PRESS : STALE_CHECK, "stale");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt, config = event.detail.requestConfig;
    if (!elt || !elt.hasAttribute) { return; }
    if (!elt.hasAttribute("data-resend")) { elt.removeAttribute("data-resent"); return; }
    elt.removeAttribute("data-resend");
    var trigger = config && config.triggeringEvent;
    if (!trigger || !trigger.type || !window.htmx) { showProblem(STALE_CHECK, "stale"); return; }
    elt.setAttribute("data-resent", "");
    window.setTimeout(function () { window.htmx.trigger(elt, trigger.type); }, 0);
  });

  // Drafts: when a request finds the session over (idle timeout, logged out in another tab),
  // the server sends the page to the login form (HX-Redirect). Before htmx follows it, what the
  // user typed in the page's draft forms is kept in sessionStorage (this tab only, gone when it
  // closes; never localStorage, never the URL, which would put phone numbers in server logs),
  // and put back, once, when that page is shown again to the same user after the login.
  // Draft forms: form[data-keep-draft] with an id, and the agent's #mask-form.
  // Hidden, password and file fields (the CSRF token among them) are never kept.
  var DRAFT_FORMS = "form[data-keep-draft][id], form#mask-form";
  var DRAFT_PREFIX = "masking.draft:";
  var LOGIN_PATH = "/login";
  var NOT_KEPT = ["hidden", "password", "file", "submit", "button", "reset", "image"];
  function draftKey(form) {
    return DRAFT_PREFIX + window.location.pathname + "#" + form.id;
  }
  function draftFields(form) {
    return Array.prototype.filter.call(form.elements, function (field) {
      return field.name && field.name !== "csrf_token" && field.matches("input, textarea, select") &&
        NOT_KEPT.indexOf(field.type) < 0;
    });
  }
  function saveDrafts() {
    var forms = document.querySelectorAll(DRAFT_FORMS);
    for (var i = 0; i < forms.length; i++) {
      var form = forms[i], typed = false, values = [];
      draftFields(form).forEach(function (field) {
        if (field.matches(CHOICES)) {
          values.push({ name: field.name, value: field.value, checked: field.checked });
        } else {
          values.push({ name: field.name, value: field.value });
          typed = typed || field.value !== "";
        }
      });
      try {
        if (typed) {
          window.sessionStorage.setItem(draftKey(form), JSON.stringify({ user: pageUser(), fields: values }));
        } else {
          window.sessionStorage.removeItem(draftKey(form));
        }
      } catch (e) { /* storage full or refused: the login goes on without the draft */ }
    }
  }
  function restoreDrafts() {
    var forms = document.querySelectorAll(DRAFT_FORMS), restored = false;
    for (var i = 0; i < forms.length; i++) {
      var form = forms[i], text = null, draft = null;
      try {
        text = window.sessionStorage.getItem(draftKey(form));
        window.sessionStorage.removeItem(draftKey(form));  // put back once, never again
        draft = text ? JSON.parse(text) : null;
      } catch (e) { draft = null; }
      // Another user logged in in this tab: the draft is not theirs, and it is dropped.
      if (!draft || !draft.user || draft.user !== pageUser() || !Array.isArray(draft.fields)) { continue; }
      var fields = draftFields(form);
      draft.fields.forEach(function (saved) {
        fields.forEach(function (field) {
          if (field.name !== saved.name) { return; }
          if (field.matches(CHOICES)) {
            if (field.value === saved.value) { field.checked = !!saved.checked; }
          } else {
            field.value = saved.value;
          }
        });
      });
      restored = true;
    }
    if (restored) {
      showNotice("Restored what you typed before you were logged out. Check it, then press the button.");
    } else if (document.getElementById("login-form") && hasDrafts()) {
      showNotice("What you typed is kept in this browser tab: log in again and it comes back.");
    }
  }
  function hasDrafts() {
    try {
      for (var i = 0; i < window.sessionStorage.length; i++) {
        if (window.sessionStorage.key(i).indexOf(DRAFT_PREFIX) === 0) { return true; }
      }
    } catch (e) { /* no storage */ }
    return false;
  }
  function showNotice(text) {
    var notice = document.getElementById("page-notice");
    if (notice) {
      notice.textContent = text;
      notice.hidden = false;
    }
  }
  document.addEventListener("htmx:beforeOnLoad", function (event) {
    var xhr = event.detail.xhr, target = xhr ? xhr.getResponseHeader("HX-Redirect") : null;
    if (target && new URL(target, window.location.href).pathname === LOGIN_PATH) { saveDrafts(); }
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", restoreDrafts);
  } else {
    restoreDrafts();
  }

  // Copy buttons: data-copy="text".
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) { return; }
    var text = button.getAttribute("data-copy");
    var label = button.textContent;
    copy(text).then(function () {
      button.textContent = "Copied";
      var status = button.parentNode.querySelector(".copied");
      if (status) { status.textContent = text + " copied"; }
    }, function () {
      button.textContent = "Select and copy by hand";
    }).finally(function () {
      window.setTimeout(function () { button.textContent = label; }, 2000);
    });
  });

  // File uploads (admin pool import): <form data-progress="ID"> shows htmx's upload progress
  // (htmx:xhr:progress) in <progress id="ID">; data-max-bytes refuses a file over the size limit
  // before sending it, with the data-too-large message in the element data-size-report names.
  function progressBar(elt) {
    var form = elt && elt.closest ? elt.closest("form[data-progress]") : null;
    return form ? document.getElementById(form.getAttribute("data-progress")) : null;
  }
  document.addEventListener("htmx:xhr:loadstart", function (event) {
    var bar = progressBar(event.target);
    if (bar) { bar.value = 0; bar.hidden = false; }
  });
  document.addEventListener("htmx:xhr:progress", function (event) {
    var bar = progressBar(event.target);
    if (!bar || !event.detail.lengthComputable || !event.detail.total) { return; }
    bar.max = 100;
    bar.value = Math.round(event.detail.loaded * 100 / event.detail.total);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var bar = progressBar(event.target);
    if (bar) { bar.hidden = true; }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form || !form.hasAttribute || !form.hasAttribute("data-max-bytes")) { return; }
    var limit = parseInt(form.getAttribute("data-max-bytes"), 10);
    var inputs = form.querySelectorAll("input[type='file']");
    for (var i = 0; i < inputs.length; i++) {
      var files = inputs[i].files || [];
      for (var j = 0; j < files.length; j++) {
        if (files[j].size > limit) {
          event.preventDefault();
          var report = document.getElementById(form.getAttribute("data-size-report"));
          if (report) {
            report.innerHTML = "";
            var message = document.createElement("p");
            message.className = "banner error";
            message.setAttribute("role", "alert");
            message.textContent = files[j].name + ": " + form.getAttribute("data-too-large");
            report.appendChild(message);
          }
          return;
        }
      }
    }
  });
})();
