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
  // The dashboards' tiles follow the widget: when it changes, their counts
  // are read again (one request per second at most).
  var TILES = ".kpis a[data-class], table.tenants a[data-class]";
  var countsTimer = null;
  function refreshCountsSoon() {
    if (countsTimer || !document.querySelector(TILES)) return;
    countsTimer = setTimeout(function () {
      countsTimer = null;
      fetch("/admin/counts", { credentials: "same-origin" })
        .then(function (r) {
          var json = (r.headers.get("content-type") || "").indexOf("application/json") === 0;
          return r.ok && !r.redirected && json ? r.json() : null;
        })
        .then(function (c) {
          if (!c) return;
          document.querySelectorAll(TILES).forEach(function (a) {
            var q = new URL(a.href, location.href).searchParams;
            // only tiles of one tenant or workspace (the system plane's
            // tiles count every run; they are not in these counts)
            if (!q.get("tenant") && !q.get("workspace")) return;
            var scope = q.get("tenant") ? c.tenants[q.get("tenant")] : c.workspaces[q.get("workspace")];
            var n = String((scope && scope[a.getAttribute("data-class")]) || 0);
            var el = a.querySelector(".n") || a;
            if (el.textContent !== n) el.textContent = n;
          });
          document.body.setAttribute("data-counts-updates", String(Number(document.body.getAttribute("data-counts-updates") || 0) + 1));
        })
        .catch(function () { /* the next change tries again */ });
    }, 1000);
  }
  function startWidget() {
    var w = document.getElementById("widget");
    if (!w) return;
    var polling = null;
    // the page was drawn with fresh counts: only later changes re-read them
    var lastWidget = null;
    function widgetChanged(h) {
      var changed = lastWidget !== null && h !== lastWidget;
      lastWidget = h;
      if (changed) refreshCountsSoon();
    }
    function poll() {
      if (polling) return;
      polling = setInterval(function () {
        fetch(w.getAttribute("data-poll"), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (h) {
            if (h !== null) {
              widgetChanged(h);
              w.innerHTML = h;
              w.setAttribute("data-mode", "poll");
            }
          });
      }, 3000);
    }
    if (!window.EventSource) { poll(); return; }
    var es = new EventSource(w.getAttribute("data-live"));
    es.addEventListener("widget", function (e) {
      widgetChanged(e.data);
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
  // Toasts: each leaves after 15 s; beyond three, the older ones collapse
  // into one "N more" line (a click shows them all).
  var TOASTS_SHOWN = 3;
  function toasts() {
    var box = document.getElementById("toasts");
    if (!box) return;
    var more = document.createElement("button");
    more.type = "button";
    more.id = "toasts-more";
    more.hidden = true;
    more.addEventListener("click", function () {
      box.setAttribute("data-expanded", "1");
      collapse();
    });
    box.appendChild(more);
    function collapse() {
      var all = box.querySelectorAll(".toast");
      var expanded = box.getAttribute("data-expanded") === "1";
      var hidden = 0;
      all.forEach(function (t, i) {
        // the newest are first (swapped in afterbegin)
        var fold = !expanded && i >= TOASTS_SHOWN;
        t.hidden = fold;
        if (fold) hidden++;
      });
      if (all.length <= TOASTS_SHOWN) box.removeAttribute("data-expanded");
      more.hidden = hidden === 0;
      more.textContent = hidden + " more";
    }
    // new toasts are swapped in first, so the "more" line stays last
    new MutationObserver(function () {
      box.querySelectorAll(".toast:not([data-timer])").forEach(function (t) {
        t.setAttribute("data-timer", "1");
        setTimeout(function () { t.remove(); }, 15000);
      });
      collapse();
    }).observe(box, { childList: true });
  }
  // A refused start answers an error status with a toast naming the field:
  // swap it in (htmx leaves error responses out by default).
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail.target;
    if (target && target.id === "toasts" && e.detail.xhr.status >= 400) {
      var body = e.detail.xhr.responseText || "";
      if (body.indexOf('<div class="toast') !== 0) {
        // not a toast (an error page, an empty 503): say so in one line
        e.detail.serverResponse = '<div class="toast error" role="alert" data-kind="error">Not started: the hub answered ' +
          e.detail.xhr.status + "; try again.</div>";
      }
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    rememberFilters();
    startWidget();
    toasts();
    tickElapsed();
    setInterval(tickElapsed, 1000);
  });
})();
