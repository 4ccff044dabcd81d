(function () {
  var specs = JSON.parse(document.getElementById("figure-data").textContent);
  var config = %s;
  Object.keys(specs).forEach(function (id) {
    var el = document.getElementById(id);
    Plotly.newPlot(el, specs[id].data, specs[id].layout, config).then(
      function () { el.setAttribute("data-rendered", "true"); },
      function (err) { console.error("figure " + id + " failed: " + err); });
  });
  function key(row, i) {
    var cell = row.cells[i];
    return cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("asc");
        Array.prototype.forEach.call(heads, function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a, i), y = key(b, i);
          if (x === "" || y === "") { return (x === "") - (y === ""); }  // blanks last
          var nx = Number(x), ny = Number(y), c;
          if (!isNaN(nx) && !isNaN(ny)) { c = nx - ny; } else { c = x.localeCompare(y); }
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
