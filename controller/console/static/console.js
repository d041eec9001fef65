// Live refresh of a switch page's counters: every 2 s, ask counters.json and
// update packets / bytes / age per flow row and the table statistics.
// Rows that changed flash briefly. No framework, no build.
(function () {
  "use strict";
  var box = document.getElementById("flows");
  var live = document.getElementById("live");
  if (!box || !live) { return; }
  var url = box.getAttribute("data-counters");

  function setCell(row, cls, value) {
    var cell = row.querySelector("td." + cls);
    if (cell && cell.textContent !== String(value)) {
      cell.textContent = value;
      return true;
    }
    return false;
  }

  function refresh() {
    if (!live.checked) { return; }
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (data) {
      if (!data) { return; }
      box.querySelectorAll("tr[data-fid]").forEach(function (row) {
        var c = data.flows[row.getAttribute("data-fid")];
        if (!c) { row.classList.add("gone"); return; }
        var changed = setCell(row, "packets", c[0]);
        setCell(row, "bytes", c[1]);
        setCell(row, "age", c[2]);
        if (changed) {
          row.classList.add("flash");
          setTimeout(function () { row.classList.remove("flash"); }, 900);
        }
      });
      document.querySelectorAll("#table-stats tr[data-table]").forEach(function (row) {
        var s = data.tables[row.getAttribute("data-table")];
        if (!s) { return; }
        setCell(row, "active", s.active);
        setCell(row, "lookup", s.lookup);
        setCell(row, "matched", s.matched);
      });
      document.body.setAttribute("data-refreshed", String(Date.now()));
    }).catch(function () { /* controller restarting: try again next tick */ });
  }

  setInterval(refresh, 2000);
})();
