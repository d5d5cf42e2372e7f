// The reports page's charts, drawn by Chart.js (vendored: static/vendor/chart.umd.min.js,
// fetched from the npm registry at install time). The figures come with the page.
const data = JSON.parse(document.getElementById("chart-data").textContent);
const Chart = window.Chart;

function draw(id, type, points, label, options = {}) {
  const canvas = document.getElementById(id);
  if (!canvas || !Chart) return;
  canvas.dataset.points = String(points.length);
  new Chart(canvas, {
    type,
    data: {
      labels: points.map((p) => p[0]),
      datasets: [{ label, data: points.map((p) => p[1]), backgroundColor: "#0b5cad", borderColor: "#0b5cad" }],
    },
    options: { animation: false, responsive: true, plugins: { legend: { display: false } }, ...options },
  });
}

draw("chart-premium", "bar", data.premium_by_day, data.labels.premium);
draw("chart-ranking", "bar", data.ranking, data.labels.premium, { indexAxis: "y" });
draw("chart-answer", "line", data.answer_rate_by_hour.map((p) => [`${p[0]}:00`, p[1] * 100]),
  data.labels.answer_rate, { scales: { y: { min: 0, max: 100 } } });
