/* Strongroom's page behaviour, from static/ only: the Content-Security-Policy allows no inline script and
   no on* attribute, so templates declare what they need with data- attributes and this file does it.

   data-confirm="text"            on a form: ask before submitting (Cancel keeps the page as it is)
   data-submit-on-change          on a select or input: submit its form when it changes
   data-clear-on-change="id"      on a select: empty the field with that id when it changes (a dependent choice)
   data-click-on-change="id"      on a select: click the element with that id when it changes (a refresh button)
   data-toggle-hidden="id"        on a button: show or hide the element with that id
   data-hide="id"                 on a button: hide the element with that id
   data-empty="id"                on a button: empty the element with that id
   data-toggle-body-class="name"  on a button: toggle a class on <body> (the navigation's ☰)
   data-print                     on a button: print the page
   data-copy="id"                 on a button: copy the value of the field with that id to the clipboard (and
                                  select it); data-copied-note="id" names where to say it was copied
   data-select-on-focus           on a read-only field: select all of it when it gets focus
   data-hide-after-success="id"   on an htmx element: hide that element after a successful request, unless
                                  the answer put a #readiness-error on the page
   .wizard [data-refresh]         a wizard field whose change re-renders the tab (clicks #refresh-tab)
*/
(function () {
  "use strict";
  document.documentElement.classList.add("js");  // with scripts on, no-script fallbacks hide (strongroom.css)

  function byId(id) { return id ? document.getElementById(id) : null; }

  document.addEventListener("submit", function (event) {
    var form = event.target.closest && event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!el || !el.closest) return;
    var cleared = byId(el.getAttribute("data-clear-on-change"));
    if (cleared) cleared.value = "";
    if (el.hasAttribute("data-submit-on-change") && el.form) {
      if (el.form.requestSubmit) el.form.requestSubmit(); else el.form.submit();
      return;
    }
    var target = byId(el.getAttribute("data-click-on-change"));
    if (target) { target.click(); return; }
    if (el.closest(".wizard [data-refresh]")) {
      var refresh = byId("refresh-tab");
      if (refresh) refresh.click();
    }
  });

  document.addEventListener("click", function (event) {
    var el = event.target.closest && event.target.closest("[data-toggle-hidden],[data-hide],[data-empty],[data-toggle-body-class],[data-print]");
    if (!el) return;
    var toggled = byId(el.getAttribute("data-toggle-hidden"));
    if (toggled) toggled.hidden = !toggled.hidden;
    var hidden = byId(el.getAttribute("data-hide"));
    if (hidden) hidden.hidden = true;
    var emptied = byId(el.getAttribute("data-empty"));
    if (emptied) emptied.innerHTML = "";
    if (el.hasAttribute("data-toggle-body-class")) document.body.classList.toggle(el.getAttribute("data-toggle-body-class"));
    if (el.hasAttribute("data-print")) window.print();
  });

  function copied(button, ok) {
    var note = byId(button.getAttribute("data-copied-note"));
    if (note) note.textContent = ok ? "Copied to the clipboard." : "Selected: press Ctrl+C to copy.";
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    var field = button && byId(button.getAttribute("data-copy"));
    if (!field) return;
    field.focus();
    field.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () { copied(button, true); },
                                                      function () { copied(button, false); });
    } else {
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      copied(button, ok);
    }
  });

  document.addEventListener("focusin", function (event) {
    var el = event.target;
    if (el && el.hasAttribute && el.hasAttribute("data-select-on-focus") && el.select) el.select();
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var source = event.detail && event.detail.elt;
    var pane = source && source.getAttribute && byId(source.getAttribute("data-hide-after-success"));
    if (pane && event.detail.successful && !byId("readiness-error")) pane.hidden = true;
  });
})();
