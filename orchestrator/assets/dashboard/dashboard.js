// The elb dashboard's page: renders each frame the server pushes over /api/events (see
// orchestrator/src/dashboard/server.rs) as tables, and the per-instance series as uPlot charts.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  // A frame older than this many ticks marks the page stale.
  const STALE_TICKS = 3;
  const METRICS = [
    { key: "requests_per_sec", chart: "chart-rps", unit: "req/s", digits: 0, floor: 1 },
    { key: "p99_ms", chart: "chart-p99", unit: "ms", digits: 3, floor: 0.01 },
    { key: "cpu_percent", chart: "chart-cpu", unit: "%", digits: 1, floor: 100 },
  ];
  const COLORS = ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#953800"];

  // The series the charts draw: times (unix seconds) and, per instance, one array per metric.
  const state = { t: [], maxPoints: 300, instances: new Map(), lastFrame: null, lastTick: null, events: new Map() };
  const charts = { signature: "", plots: {} };

  const num = (v, digits) => (v == null ? "–" : v.toFixed(digits));
  const mib = (used, total) =>
    used == null || !total ? "–" : `${Math.round(used / 1048576)}/${Math.round(total / 1048576)} MiB`;

  function row(cells, attrs) {
    const tr = document.createElement("tr");
    for (const [name, value] of Object.entries(attrs || {})) tr.setAttribute(name, value);
    for (const c of cells) {
      const td = document.createElement("td");
      if (typeof c === "object" && c !== null) {
        td.textContent = c.text;
        if (c.cls) td.className = c.cls;
        if (c.dot) td.prepend(Object.assign(document.createElement("span"), { className: "dot" }));
      } else {
        td.textContent = c;
      }
      tr.append(td);
    }
    return tr;
  }

  function renderInstances(frame) {
    const rows = frame.instances.map((i) =>
      row(
        [
          { text: i.status, dot: true },
          { text: i.id, cls: "text" },
          { text: i.cluster, cls: "text" },
          { text: i.instance_type, cls: "text" },
          num(i.cpu_percent, 1),
          num(i.throttled_percent, 1),
          mib(i.memory_used_bytes, i.memory_total_bytes),
          num(i.requests_per_sec, 1),
          num(i.p99_ms, 3),
          { text: i.reason || "", cls: "reason" },
        ],
        { "data-instance": i.id, "data-status": i.status, class: i.status },
      ),
    );
    if (rows.length === 0) rows.push(row([{ text: "no instances: elb launch starts some", cls: "empty" }]));
    $("instances").tBodies[0].replaceChildren(...rows);
    const clusters = frame.clusters.map((c) =>
      row(
        [
          c.cluster,
          { text: c.instance_types, cls: "text" },
          `${c.up}/${c.instances}`,
          num(c.cpu_percent_mean, 1),
          num(c.throttled_percent_mean, 1),
          mib(c.memory_used_bytes, c.memory_total_bytes),
          num(c.requests_per_sec, 1),
          num(c.p99_ms_max, 3),
        ],
        { "data-cluster": c.cluster, class: c.up < c.instances ? "down" : "up" },
      ),
    );
    $("clusters").tBodies[0].replaceChildren(...clusters);
  }

  // The autoscaled clusters, and their decisions kept as markers for the charts.
  function renderAutoscaling(frame) {
    const scaled = frame.autoscaling || [];
    $("autoscaling-section").hidden = scaled.length === 0;
    const rows = scaled.map((a) => {
      const last = a.last;
      if (last && last.action !== "hold") {
        state.events.set(`${a.cluster}@${last.at_unix_ms}`, { t: last.at_unix_ms / 1000, label: `${a.cluster} ${last.action}` });
      }
      return row(
        [
          a.cluster,
          `${a.min}–${a.max}`,
          a.running ? "running" : "stopped",
          last ? last.action : "–",
          last ? `${last.current} → ${last.desired}` : "–",
          { text: last ? last.reason : "", cls: "text" },
        ],
        { "data-cluster": a.cluster, class: a.running ? "up" : "down" },
      );
    });
    $("autoscaling").tBodies[0].replaceChildren(...rows);
  }

  // A uPlot plugin that draws a dashed vertical line at every scaling decision.
  function scalingMarkers() {
    return {
      hooks: {
        draw: [
          (u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = "#6e7781";
            ctx.setLineDash([4, 4]);
            for (const e of state.events.values()) {
              const x = u.valToPos(e.t, "x", true);
              if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
              ctx.beginPath();
              ctx.moveTo(x, u.bbox.top);
              ctx.lineTo(x, u.bbox.top + u.bbox.height);
              ctx.stroke();
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  function renderBalancer(frame) {
    const box = $("balancer");
    const b = frame.balancer;
    if (!b) {
      $("balancer-summary").textContent = "";
      const why = frame.balancer_error ? `: ${frame.balancer_error}` : " (elb balance up starts one)";
      box.replaceChildren(Object.assign(document.createElement("p"), { className: "empty", textContent: `no balancer${why}` }));
      return;
    }
    $("balancer-summary").textContent =
      b.status === "up"
        ? `${b.id} on ${b.listen}, config generation ${b.config_generation}, ${b.active_connections} client connections`
        : `${b.id} on ${b.listen}: down (${b.reason})`;
    const parts = b.groups.map((g) => {
      const section = document.createElement("div");
      const title = document.createElement("h3");
      title.textContent =
        `${g.name}: ${g.algorithm}, ${g.healthy_targets} healthy, ${g.unhealthy_targets} unhealthy` +
        `${g.failing_open ? ", failing open" : ""}, ${num(g.requests_per_sec, 1)} req/s, ` +
        `${g.retries} retries (${g.retries_over_budget} over budget)`;
      const table = document.createElement("table");
      table.className = "targets";
      table.setAttribute("data-group", g.name);
      const head = table.createTHead().insertRow();
      for (const h of ["state", "target", "address", "cluster", "type", "in flight", "latency est. ms", "req/s", "share % (now)", "share % (total)", "requests", "errors", "reason"]) {
        head.append(Object.assign(document.createElement("th"), { textContent: h }));
      }
      const body = table.createTBody();
      for (const t of g.targets) {
        body.append(
          row(
            [
              { text: t.ejected ? `${t.state}, ejected` : t.state, dot: true },
              { text: t.id, cls: "text" },
              { text: t.address, cls: "text" },
              { text: t.cluster || "", cls: "text" },
              { text: t.instance_type || "", cls: "text" },
              String(t.in_flight),
              num(t.latency_estimate_ms, 2),
              num(t.requests_per_sec, 1),
              num(t.share_percent, 1),
              num(t.share_total_percent, 1),
              String(t.requests),
              String(t.errors),
              { text: t.reason, cls: "text" },
            ],
            { "data-target": t.id, "data-state": t.state, class: t.ejected ? "unhealthy" : t.state },
          ),
        );
      }
      section.append(title, table);
      return section;
    });
    box.replaceChildren(...parts);
  }

  function renderHeader(frame) {
    $("project").textContent = frame.project;
    $("provider").textContent = frame.provider === "local" ? "local provider" : "EC2";
    $("updated").textContent = `tick ${frame.tick}, ${new Date(frame.polled_at_unix_ms).toLocaleTimeString()}`;
    const problems = [frame.fleet_error && `listing the fleet failed: ${frame.fleet_error}`].filter(Boolean);
    $("problems").hidden = problems.length === 0;
    $("problems").textContent = problems.join("; ");
  }

  // Series bookkeeping: the history replaces everything; each frame appends one point.
  function applyHistory(history) {
    state.t = [];
    state.instances = new Map();
    state.lastTick = history ? history.last_tick : null;
    if (!history) return;
    state.maxPoints = history.max_points;
    state.t = history.t.slice();
    for (const i of history.instances) {
      state.instances.set(i.id, {
        label: `${i.id} (${i.cluster}, ${i.instance_type})`,
        values: Object.fromEntries(METRICS.map((m) => [m.key, i[m.key].slice()])),
      });
    }
  }

  function applyFrame(frame) {
    state.t.push(frame.polled_at_unix_ms / 1000);
    const seen = new Set();
    for (const i of frame.instances) {
      seen.add(i.id);
      if (!state.instances.has(i.id)) {
        const gap = () => new Array(state.t.length - 1).fill(null);
        state.instances.set(i.id, {
          label: `${i.id} (${i.cluster}, ${i.instance_type})`,
          values: Object.fromEntries(METRICS.map((m) => [m.key, gap()])),
        });
      }
      const series = state.instances.get(i.id);
      for (const m of METRICS) series.values[m.key].push(i[m.key] ?? null);
    }
    for (const [id, series] of state.instances) {
      if (!seen.has(id)) for (const m of METRICS) series.values[m.key].push(null);
    }
    while (state.t.length > state.maxPoints) {
      state.t.shift();
      for (const series of state.instances.values()) for (const m of METRICS) series.values[m.key].shift();
    }
    // An instance gone for the whole window leaves the charts (as it leaves /api/history).
    for (const [id, series] of state.instances) {
      if (METRICS.every((m) => series.values[m.key].every((v) => v == null))) state.instances.delete(id);
    }
  }

  // The charts are rebuilt when the set of instances changes, else given the new data.
  function drawCharts() {
    const ids = [...state.instances.keys()];
    const signature = ids.join(",");
    for (const m of METRICS) {
      const data = [state.t, ...ids.map((id) => state.instances.get(id).values[m.key])];
      const existing = charts.plots[m.key];
      if (existing && charts.signature === signature) {
        existing.setData(data);
        continue;
      }
      if (existing) existing.destroy();
      const target = $(m.chart);
      charts.plots[m.key] = new uPlot(
        {
          width: Math.max(target.clientWidth, 300),
          height: 220,
          series: [
            {},
            ...ids.map((id, n) => ({
              label: state.instances.get(id).label,
              stroke: COLORS[n % COLORS.length],
              width: 1.5,
              value: (_, v) => (v == null ? "–" : `${v.toFixed(m.digits)} ${m.unit}`),
            })),
          ],
          axes: [{}, { size: 60 }],
          legend: { live: false },
          plugins: [scalingMarkers()],
          scales: { y: { range: (_, min, max) => [0, Math.max(max, m.floor)] } },
        },
        data,
        target,
      );
    }
    charts.signature = signature;
  }

  function markConnection() {
    const badge = $("connection");
    const frame = state.lastFrame;
    const fresh = frame && Date.now() - frame.receivedAt < STALE_TICKS * frame.tick_ms;
    badge.textContent = fresh ? "live" : frame ? "stale: no update" : "connecting";
    badge.className = fresh ? "badge" : "badge stale";
  }

  // One stream: the history, then a frame per tick. A frame that is not the successor of the
  // last one (this page fell behind) means points were lost: reconnect for the history anew.
  let events;
  function connect() {
    events = new EventSource("/api/events");
    events.addEventListener("history", (e) => {
      applyHistory(JSON.parse(e.data));
      drawCharts();
    });
    events.addEventListener("frame", onFrame);
    events.addEventListener("error", markConnection);
  }

  function onFrame(e) {
    const frame = JSON.parse(e.data);
    if (state.lastTick != null && frame.tick !== state.lastTick + 1) {
      events.close();
      connect();
      return;
    }
    state.lastTick = frame.tick;
    frame.receivedAt = Date.now();
    state.lastFrame = frame;
    renderHeader(frame);
    renderInstances(frame);
    renderBalancer(frame);
    renderAutoscaling(frame);
    applyFrame(frame);
    drawCharts();
    markConnection();
  }

  connect();
  setInterval(markConnection, 1000);
  window.addEventListener("resize", () => {
    for (const [key, plot] of Object.entries(charts.plots)) {
      const target = $(METRICS.find((m) => m.key === key).chart);
      plot.setSize({ width: Math.max(target.clientWidth, 300), height: 220 });
    }
  });

  // Read by the browser tests (tests/system/dashboard): the charts and their data.
  window.elbDashboard = { state, charts };
})();
