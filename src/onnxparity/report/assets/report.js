/* onnxparity HTML report: draws the report's payload (the JSON in #report-data) with Chart.js. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const byId = new Map(data.items.map((item) => [item.id, item]));
  const COLORS = { ok: "#1b7f3b", mid: "#4caf50", warn: "#c98a00", bad: "#c62828", err: "#6a1b9a", skip: "#9e9e9e" };
  let charts = [];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function num(value) {
    if (value === "inf") return Infinity;
    if (value === "-inf") return -Infinity;
    if (value === "nan" || value === null || value === undefined) return NaN;
    return Number(value);
  }

  function short(value) {
    const found = num(value);
    return isFinite(found) ? String(Number(found.toPrecision(3))) : String(value);
  }

  function pct(share) {
    if (!isFinite(share)) return "∞";
    if (share > 1) return Number(share.toPrecision(3)) + "× the tolerance";
    if (share === 0) return "0%";
    if (share < 0.01) return "<1%";
    return Math.round(share * 100) + "%";
  }

  function colour(item) {
    if (item.status === "failed") return COLORS.bad;
    if (item.status === "error") return COLORS.err;
    if (item.status === "skipped") return COLORS.skip;
    const share = num(item.headroom);
    const margin = sqnrMargin(item);
    if (!isNaN(margin)) return margin < 3 ? COLORS.warn : margin < 10 ? COLORS.mid : COLORS.ok;
    if (!isNaN(share) && share > 0.5) return COLORS.warn;
    if (!isNaN(share) && share > 0.1) return COLORS.mid;
    return COLORS.ok;
  }

  function sqnrMargin(item) {
    const found = /^SQNR ([+-][0-9.]+) dB$/.exec(item.room || "");
    return found ? Number(found[1]) : NaN;
  }

  function cellText(item) {
    if (item.status === "failed") return "FAIL";
    if (item.status === "error") return "ERROR";
    if (item.status === "skipped") return "skip";
    const share = num(item.headroom);
    const margin = sqnrMargin(item);
    if (!isNaN(margin)) return (margin >= 0 ? "+" : "") + Math.round(margin) + " dB";
    return isNaN(share) ? "pass" : pct(share);
  }

  function describe(item) {
    const parts = [item.id, item.status + (item.weak.length ? " (weak)" : "")];
    if (item.worst) parts.push("worst " + item.worst);
    if (!isNaN(num(item.headroom))) parts.push(pct(num(item.headroom)) + " of the tolerance used");
    if (item.baseline) parts.push("vs baseline: " + item.baseline.text);
    if (item.cached) parts.push("reused from the run of " + item.cached);
    return parts.join(" · ");
  }

  function header() {
    const env = data.environment || {};
    const versions = env.versions || {};
    const shown = ["onnxparity", "onnxruntime", "onnx", "torch", "tensorflow", "scikit-learn"]
      .filter((k) => versions[k]).map((k) => k + " " + versions[k]).join(", ");
    document.getElementById("run").textContent =
      "Run " + (data.created || "?") + " · Python " + (env.python || "?") + (shown ? " · " + shown : "") +
      (env.providers ? " · providers: " + env.providers.join(", ") : "");
    const summary = data.summary || {};
    const counts = ["passed", "failed", "error", "skipped"].filter((k) => summary[k]).map((k) => summary[k] + " " + k);
    const weak = data.items.filter((i) => i.weak.length).length;
    if (weak) counts.splice(1, 0, weak + " weak");
    document.getElementById("counts").textContent = data.items.length + " items: " + (counts.join(", ") || "none");
    if (data.incomplete) {
      const node = document.getElementById("incomplete");
      node.textContent = "INCOMPLETE: " + data.incomplete + "; this is no release result";
      node.hidden = false;
    }
  }

  function legend() {
    const entries = [["passed, ≤10% of the tolerance (SQNR ≥10 dB over the policy)", COLORS.ok], ["passed, ≤50% (≥3 dB)", COLORS.mid],
      ["passed, >50% (<3 dB)", COLORS.warn],
      ["failed", COLORS.bad], ["error", COLORS.err], ["skipped", COLORS.skip]];
    const node = document.getElementById("legend");
    for (const [text, background] of entries) node.append(el("span", { text, style: "background:" + background }));
  }

  function matrix() {
    const table = document.getElementById("matrix");
    const head = el("tr", {}, el("th", { class: "test", text: "test" }));
    for (const column of data.columns) head.append(el("th", { text: column }));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    const cells = new Map(data.items.map((i) => [i.test + "\u0000" + i.column, i]));
    for (const test of data.tests) {
      const row = el("tr", {}, el("th", { class: "test", text: test, title: test }));
      for (const column of data.columns) {
        const item = cells.get(test + "\u0000" + column);
        if (!item) { row.append(el("td", { class: "empty" })); continue; }
        const button = el("button", {
          class: "cell" + (item.weak.length ? " weak" : ""), "data-id": item.id, title: describe(item),
          style: "background:" + colour(item), text: cellText(item) + (item.cached ? " ↺" : ""), onclick: () => show(item.id),
        });
        row.append(el("td", {}, button));
      }
      body.append(row);
    }
    table.append(body);
  }

  function kv(pairs) {
    const list = el("dl", { class: "kv" });
    for (const [key, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      list.append(el("dt", { text: key }), el("dd", {}, value instanceof Node ? value : String(value)));
    }
    return list;
  }

  function edge(value, unit) {
    if (unit === "%") return value >= 0.01 ? Number((value * 100).toPrecision(2)) + "%" : Number((value * 100).toExponential(0)) + "%";
    if (unit === " dB") return value + " dB";
    return value >= 1e-3 && value < 1e4 ? String(Number(value.toPrecision(2))) : value.toExponential(0);
  }

  function histogram(canvas, hist, title, unit, danger) {
    const counts = hist.counts, edges = hist.edges;
    let first = counts.findIndex((c) => c > 0), last = counts.length - 1;
    while (last > 0 && counts[last] === 0) last--;
    if (first < 0) return null;
    first = Math.max(0, first - 1); last = Math.min(counts.length - 1, last + 1);
    const labels = [], values = [], colours = [];
    for (let i = first; i <= last; i++) {
      const low = i === 0 ? 0 : edges[i - 1];
      labels.push(i === 0 ? "< " + edge(edges[0], unit) : i === counts.length - 1 ? "≥ " + edge(edges[edges.length - 1], unit) : "≥ " + edge(low, unit));
      values.push(counts[i]);
      colours.push(danger(low));
    }
    return new Chart(canvas, {
      type: "bar",
      data: { labels, datasets: [{ label: "examples", data: values, backgroundColor: colours }] },
      options: { animation: false, maintainAspectRatio: false, plugins: { title: { display: true, text: title }, legend: { display: false } },
        scales: { y: { beginAtZero: true, title: { display: true, text: "examples" }, ticks: { precision: 0 } } } },
    });
  }

  function scatter(canvas, points, against, byShare) {
    const columns = points.columns, rows = points.rows;
    const x = columns.indexOf(against), y = columns.indexOf("max_abs_error"), used = columns.indexOf("tolerance_used");
    const values = rows.map((r) => ({ x: num(r[x]), y: num(r[y]), used: num(r[used]) }))
      .filter((p) => isFinite(p.x) && isFinite(p.y));
    if (!values.length) return null;
    const positive = values.every((p) => p.y > 0);
    return new Chart(canvas, {
      type: "scatter",
      data: { datasets: [{ label: "examples", data: values, pointRadius: 3,
        backgroundColor: values.map((p) => (!byShare ? "#546e7a" : p.used > 1 ? COLORS.bad : p.used > 0.5 ? COLORS.warn : COLORS.ok)) }] },
      options: { animation: false, maintainAspectRatio: false,
        plugins: { legend: { display: false }, title: { display: true,
          text: "worst error against the input's " + (against === "input_values" ? "size (values)" : "largest |value|") } },
        scales: { x: { title: { display: true, text: against === "input_values" ? "input values" : "input max |x|" } },
          y: { type: positive ? "logarithmic" : "linear", title: { display: true, text: "max abs error" } } } },
    });
  }

  function latencyChart(canvas, item) {
    const measured = item.measured || {}, budget = item.budget || {};
    const stats = ["min", "p50", "p95", "max"];
    const datasets = [];
    for (const [side, colourName] of [["variant", COLORS.ok], ["framework", "#1565c0"]]) {
      if (measured[side]) datasets.push({ label: side + " (ms)", data: stats.map((s) => num(measured[side][s])), backgroundColor: colourName });
    }
    if (budget.p50_ms || budget.p95_ms) {
      datasets.push({ type: "line", label: "budget (ms)", data: [null, num(budget.p50_ms) || null, num(budget.p95_ms) || null, null],
        borderColor: COLORS.bad, backgroundColor: COLORS.bad, pointRadius: 6, showLine: false });
    }
    if (!datasets.length) return null;
    return new Chart(canvas, { type: "bar", data: { labels: stats, datasets },
      options: { animation: false, maintainAspectRatio: false, plugins: { title: { display: true, text: "latency: the measured spread against the budget" } } } });
  }

  function ratioChart(canvas, item) {
    const measured = item.measured || {}, budget = item.budget || {};
    const ratio = num(measured.ratio), limit = num(budget.max_ratio);
    if (!isFinite(ratio)) return null;
    const labels = ["variant / framework p50"], datasets = [
      { label: "measured", data: [ratio], backgroundColor: isFinite(limit) && ratio > limit ? COLORS.bad : COLORS.ok }];
    if (isFinite(limit)) datasets.push({ label: "budget (max_ratio)", data: [limit], backgroundColor: "#90a4ae" });
    return new Chart(canvas, { type: "bar", data: { labels, datasets },
      options: { indexAxis: "y", animation: false, maintainAspectRatio: false,
        plugins: { title: { display: true, text: "latency ratio against its budget" } }, scales: { x: { beginAtZero: true } } } });
  }

  function opsetChart(canvas, item) {
    const measured = item.measured || {}, budget = item.budget || {};
    const opsets = Object.keys(measured);
    if (!opsets.length) return null;
    const forbidden = new Set(budget.forbidden_ops || []);
    const ops = [...new Set(opsets.flatMap((o) => Object.keys(measured[o].op_types || {})))].sort();
    const palette = ["#546e7a", "#1565c0", "#00897b", "#6d4c41"];
    const datasets = opsets.map((o, k) => ({ label: "opset " + o, data: ops.map((op) => (measured[o].op_types || {})[op] || 0),
      backgroundColor: ops.map((op) => (forbidden.has(op) ? COLORS.bad : palette[k % palette.length])) }));
    const range = budget.min || budget.max ? " · allowed opsets " + (budget.min || "any") + "–" + (budget.max || "any") : "";
    const banned = forbidden.size ? " · forbidden: " + [...forbidden].join(", ") : "";
    return new Chart(canvas, { type: "bar", data: { labels: ops, datasets },
      options: { animation: false, maintainAspectRatio: false,
        plugins: { title: { display: true, text: "ops in the exported graph" + range + banned } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
  }

  function historyChart(canvas, item) {
    const points = item.history || [];
    if (points.length < 2) return null;
    const errors = points.map((p) => (p.error === null ? null : num(p.error)));
    const latencies = points.map((p) => (p.latency === null ? null : num(p.latency)));
    const datasets = [];
    if (errors.some((v) => v !== null)) datasets.push({ label: "max abs error", data: errors, borderColor: COLORS.bad, yAxisID: "y" });
    if (latencies.some((v) => v !== null)) datasets.push({ label: "latency", data: latencies, borderColor: "#1565c0", yAxisID: "y1" });
    if (!datasets.length) return null;
    return new Chart(canvas, { type: "line", data: { labels: points.map((p) => p.label), datasets },
      options: { animation: false, maintainAspectRatio: false, plugins: { title: { display: true, text: "across releases" } },
        scales: { y: { position: "left" }, y1: { position: "right", grid: { drawOnChartArea: false } } } } });
  }

  function chartBox(draw) {
    const canvas = el("canvas");
    const box = el("div", { class: "chart" }, canvas);
    return { box, draw: () => draw(canvas) };
  }

  function show(id) {
    const item = byId.get(id);
    if (!item) return;
    for (const chart of charts) chart.destroy();
    charts = [];
    document.querySelectorAll("button.cell.selected").forEach((b) => b.classList.remove("selected"));
    const button = document.querySelector('button.cell[data-id="' + CSS.escape(id) + '"]');
    if (button) button.classList.add("selected");
    const section = document.getElementById("details");
    section.hidden = false;
    document.getElementById("details-title").textContent = item.id;
    const body = document.getElementById("details-body");
    body.replaceChildren();
    const badge = el("span", { class: "badge", text: item.status + (item.weak.length ? " (weak)" : ""), style: "background:" + colour(item) });
    const advice = item.advice && item.advice.expression
      ? el("span", {}, el("code", { text: item.advice.expression }), " — " + item.advice.basis + (item.advice.looser ? " (LOOSER than declared: only if this error is acceptable)" : ""))
      : item.advice ? item.advice.basis : null;
    const div = item.divergence;
    body.append(kv([
      ["verdict", badge],
      ["worst error", item.worst],
      ["tolerance used", isNaN(num(item.headroom)) ? null : num(item.headroom) > 1 ? pct(num(item.headroom)) : pct(num(item.headroom)) + " (headroom " + pct(1 - num(item.headroom)) + ")"],
      ["policy", item.policy],
      ["examples", item.examples],
      ["reused", item.cached ? "computed in the run of " + item.cached + "; nothing it depends on has changed since" : null],
      ["model", item.model ? [item.model.name, item.model.exporter, item.model.opset ? "opset " + item.model.opset : ""].filter(Boolean).join(" · ") : null],
      ["first divergence", div ? (div.line ? div.line.replace(/^first divergence: /, "") : div.op_type + " '" + div.node + "'" + (div.source ? " (" + div.source + ")" : "") + ": output '" + div.tensor +
        "' max abs error " + short(div.max_abs_error) + ", its inputs " + short(div.input_max_abs_error)) : null],
      ["what it means", div && div.evidence && div.evidence.length ? el("span", {}, ...div.evidence.map((line) => el("div", { text: line }))) : null],
      ["against the baseline", item.baseline ? el("span", {}, el("span", { class: "badge change-" + item.baseline.change, text: item.baseline.change }), " " + item.baseline.text) : null],
      ["advised tolerance", advice],
      ["weak because", item.weak.length ? item.weak.join("; ") : null],
      ["coverage", item.coverage && item.coverage.unreached && item.coverage.unreached.length ? item.coverage.unreached.join("; ") : null],
    ]));
    const boxes = [];
    const dist = item.distribution;
    if (dist) {
      if (!dist.sqnr_db) boxes.push(chartBox((c) => histogram(c, dist.tolerance_used, "share of the tolerance used, per example (" + dist.examples + ")", "%", (low) => (low >= 1 ? COLORS.bad : low >= 0.5 ? COLORS.warn : COLORS.ok))));
      boxes.push(chartBox((c) => histogram(c, dist.max_abs_error, "max abs error, per example", "", () => "#546e7a")));
      if (dist.sqnr_db) boxes.push(chartBox((c) => histogram(c, dist.sqnr_db, "SQNR per example (dB)", " dB", () => "#546e7a")));
      // points coloured by the share of the tolerance used: meaningless under an Agreement
      boxes.push(chartBox((c) => scatter(c, dist.points, "input_max_abs", !dist.sqnr_db)));
      boxes.push(chartBox((c) => scatter(c, dist.points, "input_values", !dist.sqnr_db)));
    }
    if (item.kind === "latency") {
      boxes.push(chartBox((c) => latencyChart(c, item)));
      boxes.push(chartBox((c) => ratioChart(c, item)));
    }
    if (item.kind === "opset") boxes.push(chartBox((c) => opsetChart(c, item)));
    if (item.history) boxes.push(chartBox((c) => historyChart(c, item)));
    if (boxes.length) {
      const grid = el("div", { class: "charts" });
      for (const b of boxes) grid.append(b.box);
      body.append(el("h3", { text: "Numbers" }), grid);
      for (const b of boxes) {
        const chart = b.draw();
        if (chart) charts.push(chart); else b.box.remove();
      }
    }
    if (item.kind !== "parity" && (item.budget || item.measured)) {
      body.append(el("details", {}, el("summary", { text: "the budget and what was measured (JSON)" }),
        el("pre", { text: JSON.stringify({ budget: item.budget, measured: item.measured }, null, 2) })));
    }
    if (item.message) body.append(el("h3", { text: "Diagnosis" }), el("pre", { class: "diagnosis", text: item.message }));
    section.scrollIntoView({ block: "start" });
  }

  function link(entry) {
    return el("a", { class: "item", text: entry.id, onclick: () => show(entry.id) });
  }

  function changes() {
    if (!data.baseline) return;
    document.getElementById("changes-section").hidden = false;
    const root = document.getElementById("changes");
    root.append(el("p", { class: "hint", text: "Baseline: " + data.baseline.label + ". Worse: a status that got worse, an error that more than doubled, latency up by more than 20%." }));
    const groups = { worse: [], better: [], new: [] };
    for (const item of data.items) if (item.baseline && groups[item.baseline.change]) groups[item.baseline.change].push(item);
    const titles = { worse: "Got worse", better: "Got better", new: "New" };
    for (const key of ["worse", "better", "new"]) {
      root.append(el("h3", {}, el("span", { class: "badge change-" + key, text: titles[key] }), " " + groups[key].length));
      const list = el("ul");
      for (const item of groups[key]) list.append(el("li", {}, link(item), " — " + item.baseline.text));
      root.append(list);
    }
    root.append(el("h3", {}, el("span", { class: "badge change-gone", text: "Gone" }), " " + data.baseline.gone.length));
    const gone = el("ul");
    for (const entry of data.baseline.gone) gone.append(el("li", { text: entry.id + " — was " + entry.status }));
    root.append(gone);
  }

  function adviceTable() {
    document.getElementById("advice-hint").textContent =
      "The tightest policy that would have passed, with a margin of ×" + data.margin + " over the worst example observed " +
      "(onnxparity advise REPORT.json prints them as marker arguments to paste).";
    const table = document.getElementById("advice");
    table.append(el("tr", {}, el("th", { text: "item" }), el("th", { text: "advised" }), el("th", { text: "basis" })));
    const advised = data.items.filter((i) => i.advice);
    document.getElementById("advice-summary").textContent = advised.length + " items (show all)";
    for (const item of advised) {
      table.append(el("tr", {}, el("td", {}, link(item)),
        el("td", {}, item.advice.expression ? el("code", { text: item.advice.expression }) : "—"),
        el("td", { text: item.advice.basis + (item.advice.looser ? " (LOOSER than declared)" : "") })));
    }
  }

  function historyTable() {
    if (!data.history || !data.history.length) return;
    document.getElementById("history-section").hidden = false;
    const table = document.getElementById("history");
    const head = el("tr", {}, el("th", { text: "item" }), el("th", { text: "measure" }));
    for (const label of data.history) head.append(el("th", { text: label }));
    table.append(head);
    for (const item of data.items) {
      if (!item.history) continue;
      for (const [measure, key] of [["max abs error", "error"], ["latency", "latency"]]) {
        const values = item.history.map((p) => p[key]);
        if (values.every((v) => v === null)) continue;
        const row = el("tr", {}, el("td", {}, link(item)), el("td", { text: measure }));
        for (const value of values) row.append(el("td", { text: value === null ? "—" : Number(num(value).toPrecision(3)).toString() }));
        table.append(row);
      }
    }
  }

  header();
  legend();
  matrix();
  changes();
  adviceTable();
  historyTable();
  window.onnxparityShow = show;
})();
