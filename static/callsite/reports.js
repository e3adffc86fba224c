// The report page's charts, built by dashboard/charts/reports.py, drawn with plotly.
(function () {
  "use strict";

  const source = document.getElementById("report-figures");
  if (!source || !window.Plotly) return;
  const figures = JSON.parse(source.textContent);
  for (const kind of ["agents", "teams"]) {
    const el = document.getElementById(`chart-${kind}`);
    const figure = figures[kind];
    if (el && figure && figure.data[0].y.length) {
      window.Plotly.react(el, figure.data, figure.layout, { displayModeBar: false, responsive: true });
    }
  }
})();
