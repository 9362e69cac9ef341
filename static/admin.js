// spacedigest console. The only script: pages work without it.
//
// On a digest's progress page it polls progress.json once a second and updates the
// figures, the bar, the state and which controls show, until the send is over. Without
// it the page has a Refresh link instead.
(function () {
  "use strict";

  var panel = document.getElementById("progress-panel");
  if (!panel || !window.fetch) {
    return;
  }
  var url = panel.getAttribute("data-progress-url");
  if (!url) {
    return;
  }

  var INTERVAL_MS = 1000;
  // A send left paused is not watched for ever: polling keeps the session alive, so after
  // this long the page falls back to its Refresh link.
  var PAUSED_WATCH_MS = 10 * 60 * 1000;
  var pausedSince = null;
  var FINAL = { Delivered: true, Cancelled: true, "Not sent": true };
  var BADGES = {
    Sending: "badge--info",
    Paused: "badge--warn",
    Cancelled: "badge--danger",
    Delivered: "badge--ok"
  };
  var FIGURES = ["sent", "failed", "remaining", "paused", "cancelled", "skipped", "total"];
  // The recipients filters' counts, keyed by filter, and the figure each one shows.
  var FILTERS = {
    all: "total",
    sent: "sent",
    failed: "failed",
    remaining: "remaining",
    paused: "paused",
    cancelled: "cancelled",
    skipped: "skipped"
  };
  var counts = document.querySelectorAll("[data-filter-count]");
  var loaded = {};
  Array.prototype.forEach.call(counts, function (el) {
    loaded[el.getAttribute("data-filter-count")] = el.textContent;
  });

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(id, text) {
    var el = byId(id);
    if (el && el.textContent !== text) {
      el.textContent = text;
    }
  }

  function show(id, visible) {
    var el = byId(id);
    if (el) {
      el.hidden = !visible;
    }
  }

  function number(n) {
    return typeof n === "number" ? n.toLocaleString("en-US") : String(n);
  }

  function update(p) {
    FIGURES.forEach(function (name) {
      setText("progress-" + name, number(p[name]));
    });
    setText("progress-rate", number(p.rate_per_minute));
    setText("progress-percent", p.percent + "%");
    setText("progress-status", p.status);

    var badge = byId("progress-status");
    if (badge) {
      badge.className = "badge " + (BADGES[p.status] || "badge--muted");
    }

    var bar = byId("send-progress");
    if (bar) {
      var done = p.sent + p.failed + p.skipped + p.cancelled;
      bar.max = Math.max(p.total, 1);
      bar.value = p.total === 0 ? 1 : done;
      bar.textContent = p.percent + "%";
    }

    // The recipients table is not redrawn: when its counts move, offer a reload.
    var moved = false;
    Array.prototype.forEach.call(counts, function (el) {
      var key = el.getAttribute("data-filter-count");
      var text = number(p[FILTERS[key]]);
      el.textContent = text;
      if (text !== loaded[key]) {
        moved = true;
      }
    });
    show("recipients-stale", moved);

    show("pause-form", p.status === "Sending");
    show("resume-form", p.status === "Paused");
    show("cancel-send", p.status === "Sending" || p.status === "Paused");
  }

  function poll() {
    fetch(url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" }
    })
      .then(function (response) {
        if (response.status === 401) {
          // The session ended: the Refresh link leads to the login page.
          show("progress-refresh", true);
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (p) {
        if (!p) {
          return;
        }
        update(p);
        if (p.status === "Paused") {
          pausedSince = pausedSince || Date.now();
        } else {
          pausedSince = null;
        }
        if (pausedSince !== null && Date.now() - pausedSince > PAUSED_WATCH_MS) {
          show("progress-refresh", true);
        } else if (!FINAL[p.status]) {
          window.setTimeout(poll, INTERVAL_MS);
        }
      })
      .catch(function () {
        // A dropped request or a restarting server: try again, a little later.
        window.setTimeout(poll, INTERVAL_MS * 3);
      });
  }

  show("progress-refresh", false);
  poll();
})();
