// The call wall: one row per call, kept in sync from the overview socket.
(function () {
  "use strict";
  const calls = new Map();
  const rows = document.getElementById("wall-rows");

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function render() {
    const ordered = [...calls.values()].sort((a, b) => {
      const liveA = a.state !== "ended", liveB = b.state !== "ended";
      if (liveA !== liveB) return liveA ? -1 : 1;
      return (b.started_at || "").localeCompare(a.started_at || "");
    });
    rows.replaceChildren();
    if (!ordered.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell("Waiting for calls…");
      td.colSpan = 6;
      tr.append(td);
      rows.append(tr);
      return;
    }
    for (const call of ordered) {
      const tr = document.createElement("tr");
      tr.dataset.callId = call.id;
      tr.dataset.state = call.state;
      const link = document.createElement("a");
      link.href = `/calls/${call.id}/`;
      link.textContent = call.connection_id || `ringing: ${call.caller_display_name || call.caller || "unknown caller"}`;
      const name = document.createElement("td");
      name.append(link);
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.state = call.state;
      badge.textContent = call.state;
      const state = document.createElement("td");
      state.append(badge);
      tr.append(
        name,
        state,
        cell(call.started_at ? new Date(call.started_at).toLocaleTimeString() : ""),
        cell(window.callDuration(call), "duration"),
        cell(call.participants.map((p) => `${p.label} (${p.role})`).join(", ")),
        cell(call.transcript_source),
      );
      rows.append(tr);
    }
  }

  window.connectLive("/ws/dashboard/", function (event) {
    if (event.type === "snapshot") {
      calls.clear();
      for (const call of event.calls) calls.set(call.id, call);
    } else if (event.type === "call.updated") {
      calls.set(event.call.id, event.call);
    }
    render();
  });
  window.setInterval(render, 1000);
})();
