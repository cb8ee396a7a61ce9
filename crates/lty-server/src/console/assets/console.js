// lty console: small progressive enhancements. Every page works without
// this file; with it, destructive buttons ask first, long forms show
// progress and device tables update their online state live.
(function () {
  "use strict";

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var button = ev.submitter || form.querySelector("button[type=submit]");
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      ev.preventDefault();
      return;
    }
    if (form.hasAttribute("data-busy")) {
      var bar = form.querySelector("progress.busy");
      if (bar) bar.hidden = false;
      if (button) {
        // Disabled after the submission has been collected.
        setTimeout(function () { button.disabled = true; }, 0);
        button.textContent = form.getAttribute("data-busy");
      }
    }
  });

  function follow(table) {
    if (!window.EventSource) return;
    var source = new EventSource(table.getAttribute("data-live"));
    source.addEventListener("online", function (ev) {
      var data = JSON.parse(ev.data);
      var rows = table.querySelectorAll("tr[data-mac]");
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].getAttribute("data-mac") !== data.mac) continue;
        var badge = rows[i].querySelector(".badge.online");
        if (!badge) continue;
        badge.classList.toggle("ok", data.online);
        badge.classList.toggle("off", !data.online);
        badge.textContent = badge.getAttribute(data.online ? "data-on" : "data-off");
      }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelectorAll("table[data-live]");
    for (var i = 0; i < live.length; i++) follow(live[i]);
  });
})();
