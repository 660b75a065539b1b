// grizzly console: charts from the console's JSON routes, and live regions that pause while a field is edited.
// No inline script anywhere (the Content-Security-Policy forbids it): everything is wired here.
(function () {
  "use strict";
  var palette = ["#2557a7", "#067647", "#b54708", "#b42318", "#6941c6", "#0e7090"];

  function draw(canvas) {
    var box = canvas.closest("section") || canvas.parentNode;
    var problem = box.querySelector(".chart-error");
    fetch(canvas.dataset.chart, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (reply) {
        if (reply.redirected || reply.status === 401) { window.location = "/login"; return null; }
        return reply.json();
      })
      .then(function (data) {
        if (!data) { return; }
        if (problem) {
          problem.hidden = !(data.error || data.note);
          problem.textContent = data.error || data.note || "";
          problem.className = "chart-error " + (data.error ? "error" : "note");
        }
        var datasets = (data.series || []).map(function (s, i) {
          return { label: s.label, data: s.data, backgroundColor: palette[i % palette.length],
                   borderColor: palette[i % palette.length] };
        });
        if (canvas.chart) {
          canvas.chart.data.labels = data.labels || [];
          canvas.chart.data.datasets = datasets;
          canvas.chart.update("none");
        } else {
          canvas.chart = new window.Chart(canvas, {
            type: data.type || "bar",
            data: { labels: data.labels || [], datasets: datasets },
            options: { animation: false, maintainAspectRatio: false, responsive: true,
                       scales: { y: { beginAtZero: true } } }
          });
        }
        canvas.dataset.drawn = String((data.labels || []).length);
      })
      .catch(function (err) {
        if (problem) { problem.hidden = false; problem.textContent = "chart: " + err; }
      });
  }

  function start() {
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      draw(canvas);
      var every = parseFloat(canvas.dataset.refresh || "0");
      if (every > 0) {
        window.setInterval(function () { if (!document.hidden) { draw(canvas); } }, every * 1000);
      }
    });
    // a live region is re-fetched every few seconds: not while the operator types in one of its fields
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      var elt = event.detail.elt, active = document.activeElement;
      if (!elt || elt.id !== "live") { return; }
      if (document.hidden || (active && elt.contains(active) && active.matches("input, select, textarea"))) {
        event.preventDefault();  // a tab nobody looks at asks the admin APIs nothing
      }
    });
    // a form that asks first: data-confirm="text"
    document.body.addEventListener("submit", function (event) {
      var text = event.target.dataset && event.target.dataset.confirm;
      if (text && !window.confirm(text)) { event.preventDefault(); }
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
