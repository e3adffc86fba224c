// The supervisor's talk-time charts. dashboard/charts.py builds the figures; this file draws
// them with Plotly and keeps the timeline up to date from live deltas (docs/charts.md).
//
//   CallsiteCharts.mount({talk_time, talk_ratio, timeline}, figures)  // DOM elements, figures()
//   CallsiteCharts.update(liveUpdate)                                  // live_update()
//   CallsiteCharts.marks([{kind, key, start_s, end_s, value, text}])  // over the timeline
//
// Marks are what the call page knows beside who spoke when: each speaker's sentiment per
// final (a strip under their row), holds and mutes (shaded stretches on their row), pauses
// for payment (shaded on every row: key "*") and DTMF tones (diamonds). They are drawn on the
// row of the speaker ``key`` once it has one.
// Missing elements, a missing Plotly or a missing figure are skipped, never thrown.
(function () {
  "use strict";

  const CONFIG = { displayModeBar: false, responsive: true };
  const EPSILON = 0.0005; // seconds: half a millisecond, finer than the payload's ms
  // The same tick spacings as dashboard/charts.py, so zoomed ticks stay m:ss.
  const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400];
  const TARGET_TICKS = 8;
  // The timeline's x axis ends at the first of these past the data (then whole hours), so its
  // scale holds while a call grows and steps out now and then, rather than every bar
  // shrinking on every update. A user's zoom or pan is kept until they double-click.
  const SCALE_STEPS = [30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700, 3600];
  let zoomed = false;

  let elements = {};
  let timeline = null; // the timeline figure as last drawn: {data, layout}
  let marks = []; // the page's marks, drawn over the timeline
  const MARK = "mark:"; // meta prefix of the marks' traces; deltas leave them alone
  const SENTIMENT_COLOURS = {
    positive: "#1a7f37", neutral: "#8c959f", mixed: "#bf8700", negative: "#cf222e",
  };
  const SHADES = {
    hold: { name: "On hold", color: "rgba(191, 135, 0, 0.30)", pattern: "/" },
    mute: { name: "Muted", color: "rgba(106, 115, 125, 0.30)", pattern: "x" },
    pause: { name: "Paused for payment", color: "rgba(130, 80, 223, 0.25)", pattern: "." },
  };
  const listening = new WeakSet();

  function plotly() {
    return window.Plotly && typeof window.Plotly.react === "function" ? window.Plotly : null;
  }

  function draw(el, figure) {
    const Plotly = plotly();
    if (!Plotly || !el || !figure) return Promise.resolve(false);
    try {
      return Promise.resolve(Plotly.react(el, figure.data || [], figure.layout || {}, CONFIG))
        .then(() => true, warn);
    } catch (error) {
      return Promise.resolve(warn(error));
    }
  }

  function warn(error) {
    if (window.console) window.console.warn("callsite charts:", error);
    return false;
  }

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
  }

  function ticks(lo, hi) {
    lo = Math.max(lo, 0);
    const span = Math.max(hi - lo, 1);
    const last = TICK_STEPS[TICK_STEPS.length - 1];
    const step = TICK_STEPS.find((s) => span / s <= TARGET_TICKS) ||
      last * Math.ceil(span / (last * TARGET_TICKS));
    const tickvals = [];
    for (let t = Math.ceil(lo / step) * step; t <= Math.max(hi, lo); t += step) tickvals.push(t);
    return { tickvals, ticktext: tickvals.map(clock) };
  }

  // m:ss ticks for the time range on screen (after a zoom, a pan or new data).
  function retick() {
    const el = elements.timeline;
    const axis = el && el._fullLayout && el._fullLayout.xaxis;
    if (!timeline || !axis || !Array.isArray(axis.range)) return;
    const next = ticks(Number(axis.range[0]), Number(axis.range[1]));
    const xaxis = (timeline.layout.xaxis = timeline.layout.xaxis || {});
    if (String(xaxis.tickvals) === String(next.tickvals)) return;
    xaxis.tickmode = "array";
    xaxis.tickvals = next.tickvals;
    xaxis.ticktext = next.ticktext;
    draw(el, timeline);
  }

  // The row label of each speaker key, from the speakers' traces.
  function rowLabels(figure) {
    const labels = new Map();
    figure.data.forEach((t) => {
      if (t.meta !== undefined && !String(t.meta).startsWith(MARK)) labels.set(String(t.meta), t.name);
    });
    return labels;
  }

  function markTraces(figure) {
    const labels = rowLabels(figure);
    const traces = new Map();
    const trace = (id, make) => {
      if (!traces.has(id)) traces.set(id, Object.assign({ meta: MARK + id, showlegend: false }, make()));
      return traces.get(id);
    };
    // A mark keyed "*" is the whole call's (a pause for payment): drawn on every row.
    const rows = (m) => (m.key === "*" ? [...new Set(labels.values())] : [labels.get(String(m.key))]);
    for (const m of marks) for (const label of rows(m)) {
      if (label === undefined || !Number.isFinite(m.start_s)) continue;
      const end = Number.isFinite(m.end_s) ? Math.max(m.end_s, m.start_s) : m.start_s;
      let t;
      if (m.kind === "sentiment" && SENTIMENT_COLOURS[m.value]) {
        // A thin strip just under the speaker's bars (they fill 0.75 of the row).
        t = trace(`sentiment:${m.value}`, () => ({
          type: "bar", orientation: "h", name: `Sentiment: ${m.value}`,
          width: 0.14, offset: 0.38, marker: { color: SENTIMENT_COLOURS[m.value] },
          base: [], x: [], y: [], text: [], textposition: "none",
          hovertemplate: "%{text}<extra></extra>",
        }));
        t.base.push(m.start_s);
        t.x.push(Math.max(end - m.start_s, 0.2));
      } else if (SHADES[m.kind]) {
        const shade = SHADES[m.kind];
        t = trace(m.kind, () => ({
          type: "bar", orientation: "h", name: shade.name, width: 0.75,
          marker: { color: shade.color, pattern: { shape: shade.pattern, fgcolor: "#57606a", size: 6 } },
          base: [], x: [], y: [], text: [], textposition: "none",
          hovertemplate: "%{text}<extra></extra>",
        }));
        t.base.push(m.start_s);
        t.x.push(Math.max(end - m.start_s, 0.05));
      } else if (m.kind === "dtmf") {
        t = trace("dtmf", () => ({
          type: "scatter", mode: "markers", name: "Keypad tones",
          marker: { symbol: "diamond", size: 10, color: "#24292f", line: { color: "#fff", width: 1 } },
          x: [], y: [], text: [], hovertemplate: "%{text}<extra></extra>",
        }));
        t.x.push(m.start_s);
      } else {
        continue;
      }
      t.y.push(label);
      t.text.push(`${label}: ${m.text || m.kind} at ${clock(m.start_s)}`);
    }
    return [...traces.values()];
  }

  function withMarks(figure) {
    const data = figure.data.filter((t) => !String(t.meta ?? "").startsWith(MARK));
    figure.data = data.concat(markTraces({ data }));
    return figure;
  }

  // Where the timeline's data ends, in seconds (bars' ends, marks' places).
  function dataEnd(figure) {
    let end = 0;
    for (const t of figure.data) {
      const x = t.x || [];
      const base = t.type === "bar" ? t.base || [] : null;
      for (let i = 0; i < x.length; i++) {
        const at = base ? Number(base[i]) + Number(x[i]) : Number(x[i]);
        if (Number.isFinite(at)) end = Math.max(end, at);
      }
    }
    return end;
  }

  function steppedRange(figure) {
    const end = Math.max(dataEnd(figure), 1);
    const step = SCALE_STEPS.find((s) => end <= s) || Math.ceil(end / 3600) * 3600;
    return [0, step];
  }

  function relayout(event) {
    const e = event || {};
    if (e["xaxis.autorange"]) zoomed = false;
    else if (e["xaxis.range[0]"] !== undefined || e["xaxis.range"] !== undefined) zoomed = true;
    if (!zoomed && e["xaxis.autorange"] && timeline) {
      drawTimeline();
      return;
    }
    retick();
  }

  function drawTimeline() {
    const el = elements.timeline;
    if (timeline) {
      withMarks(timeline);
      if (!zoomed) {
        const xaxis = (timeline.layout.xaxis = timeline.layout.xaxis || {});
        xaxis.range = steppedRange(timeline);
        xaxis.autorange = false;
      }
    }
    return draw(el, timeline).then((drawn) => {
      if (!drawn) return;
      if (typeof el.on === "function" && !listening.has(el)) {
        listening.add(el);
        el.on("plotly_relayout", relayout);
      }
      retick();
    });
  }

  // Drop every row's segments that end after since_ms (all when it is 0), append the new ones.
  function applyDelta(figure, delta) {
    const since = Number(delta.since_ms) || 0;
    const cutoff = since / 1000 + EPSILON;
    const rows = delta.rows || {};
    figure.data.forEach((trace) => {
      if (trace.meta === undefined || String(trace.meta).startsWith(MARK)) return;
      const base = trace.base || [];
      const x = trace.x || [];
      const keep = since > 0 ? base.map((b, i) => i).filter((i) => base[i] + x[i] <= cutoff) : [];
      trace.base = keep.map((i) => base[i]);
      trace.x = keep.map((i) => x[i]);
      trace.y = keep.map((i) => (trace.y || [])[i]);
    });
    Object.keys(rows).forEach((key) => {
      const row = rows[key];
      let trace = figure.data.find((t) => t.meta === key);
      if (!trace) {
        trace = { type: "bar", orientation: "h", base: [], x: [], y: [] };
        figure.data.push(trace);
      }
      const base = trace.base.concat(row.base || []);
      const x = trace.x.concat(row.x || []);
      // The row's current style (a speaker whose role became known changes colour), and its
      // label on every segment (a renamed speaker moves all their bars).
      Object.assign(trace, row.trace || {}, {
        meta: key, name: row.label, base, x, y: base.map(() => row.label),
      });
    });
    const layout = figure.layout;
    if (Array.isArray(delta.categories)) {
      layout.yaxis = Object.assign({}, layout.yaxis, { categoryarray: delta.categories });
    }
    if (delta.height) layout.height = delta.height;
    layout.datarevision = (Number(layout.datarevision) || 0) + 1; // new arrays, and say so
  }

  function copy(figure) {
    return figure ? JSON.parse(JSON.stringify(figure)) : null;
  }

  window.CallsiteCharts = {
    // Draw the three charts; figures is dashboard.charts.figures() for the call.
    mount(els, figures) {
      elements = els || {};
      const f = figures || {};
      draw(elements.talk_time, f.talk_time);
      draw(elements.talk_ratio, f.talk_ratio);
      timeline = copy(f.timeline);
      zoomed = false;
      if (timeline) {
        timeline.data = timeline.data || [];
        timeline.layout = timeline.layout || {};
      }
      return drawTimeline();
    },

    // Apply dashboard.charts.live_update(): redraw two charts, extend the timeline.
    update(live) {
      const u = live || {};
      draw(elements.talk_time, u.talk_time);
      draw(elements.talk_ratio, u.talk_ratio);
      if (!timeline || !u.timeline_delta) return Promise.resolve();
      try {
        applyDelta(timeline, u.timeline_delta);
      } catch (error) {
        warn(error);
        return Promise.resolve();
      }
      return drawTimeline();
    },

    // Replace the marks drawn over the timeline (see the top of this file).
    marks(list) {
      const next = Array.isArray(list) ? list : [];
      if (JSON.stringify(next) === JSON.stringify(marks)) return Promise.resolve();
      marks = next;
      if (!timeline) return Promise.resolve();
      timeline.layout.datarevision = (Number(timeline.layout.datarevision) || 0) + 1;
      return drawTimeline();
    },
  };
})();
