// The dashboard's only script (the Content-Security-Policy allows no inline code).
// Behaviour hangs on data-* attributes through event delegation, so it also works on
// content htmx swaps in later.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
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
  function showProblem(text) {
    var banner = document.getElementById("connection-problem");
    if (!banner) { return; }
    banner.textContent = text;
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
    if (event.detail.successful) { hideProblem(); }
  });

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
