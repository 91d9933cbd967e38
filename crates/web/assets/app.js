// TenantAtlas hub: live widget (SSE, polling as fallback), elapsed-time
// ticking, filter memory, toasts. No inline script anywhere (CSP).
(function () {
  "use strict";
  function tickElapsed() {
    var now = Date.now();
    document.querySelectorAll(".elapsed[data-since]").forEach(function (el) {
      var s = Math.max(0, Math.round((now - Number(el.getAttribute("data-since"))) / 1000));
      el.textContent = s < 60 ? s + "s" : s < 3600 ? Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s"
        : Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    });
  }
  function startWidget() {
    var w = document.getElementById("widget");
    if (!w) return;
    var polling = null;
    function poll() {
      if (polling) return;
      polling = setInterval(function () {
        fetch(w.getAttribute("data-poll"), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (h) { if (h !== null) { w.innerHTML = h; w.setAttribute("data-mode", "poll"); } });
      }, 3000);
    }
    if (!window.EventSource) { poll(); return; }
    var es = new EventSource(w.getAttribute("data-live"));
    es.addEventListener("widget", function (e) {
      w.innerHTML = e.data;
      w.setAttribute("data-mode", "live");
      w.setAttribute("data-updates", String(Number(w.getAttribute("data-updates") || 0) + 1));
      tickElapsed();
    });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) poll();
    };
  }
  function rememberFilters() {
    var key = "ta.operations.filter";
    var nav = document.getElementById("nav-operations");
    if (location.pathname === "/admin/operations") {
      var q = new URLSearchParams(location.search);
      q.delete("cursor");
      if (q.has("clear")) { sessionStorage.removeItem(key); }
      else if (q.toString()) { sessionStorage.setItem(key, q.toString()); }
      else if (sessionStorage.getItem(key)) {
        sessionStorage.setItem(key + ".restored", "1");
        location.replace("/admin/operations?" + sessionStorage.getItem(key));
        return;
      }
      // filters brought back from an earlier visit say so, with a way out
      if (sessionStorage.getItem(key + ".restored")) {
        sessionStorage.removeItem(key + ".restored");
        var form = document.querySelector("form.filters") || document.querySelector("main form");
        if (form) {
          var note = document.createElement("p");
          note.id = "restored-filters";
          note.className = "notice";
          note.appendChild(document.createTextNode("Showing the filters of your last visit. "));
          var a = document.createElement("a");
          a.href = "/admin/operations?clear=1";
          a.textContent = "Clear filters";
          note.appendChild(a);
          form.parentNode.insertBefore(note, form);
        }
      }
    }
    if (nav && sessionStorage.getItem(key)) {
      nav.href = "/admin/operations?" + sessionStorage.getItem(key);
      nav.addEventListener("click", function () { sessionStorage.setItem(key + ".restored", "1"); });
    }
  }
  function toasts() {
    var box = document.getElementById("toasts");
    if (!box) return;
    new MutationObserver(function () {
      box.querySelectorAll(".toast:not([data-timer])").forEach(function (t) {
        t.setAttribute("data-timer", "1");
        setTimeout(function () { t.remove(); }, 15000);
      });
    }).observe(box, { childList: true });
  }
  document.addEventListener("DOMContentLoaded", function () {
    rememberFilters();
    startWidget();
    toasts();
    tickElapsed();
    setInterval(tickElapsed, 1000);
  });
})();
