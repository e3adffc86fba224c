// The call wall: one row per call, kept in sync from the overview socket.
//
// Besides call state, each ingest process sends `calls.health` once a second for its live
// calls: packets per second, age of the newest packet, caption lag, talk ratio and alert
// count. The page ages that health itself between messages, so a call whose ingest process
// went silent is flagged as stuck too.
(function () {
  "use strict";
  const calls = new Map();
  const health = new Map(); // call id -> {payload, at}
  const alerts = new Map(); // call id -> {count, latest}
  const unresolved = new Map(); // call id -> Map(alert id -> alert), not yet resolved
  const speaking = new Map(); // call id -> Map(raw id -> speaking now)
  let stuckSeconds = 10;
  const rows = document.getElementById("wall-rows");
  const COLUMNS = 10;

  function healthOf(call) {
    const entry = health.get(call.id);
    if (!entry || call.state === "ended") return null;
    const age = Date.now() - entry.at;
    const lastPacket = entry.payload.last_packet_ms + age;
    return {
      fps: entry.payload.frames_per_second,
      lastPacket,
      lag: entry.payload.caption_lag_ms,
      stuck: entry.payload.stuck || lastPacket >= stuckSeconds * 1000,
    };
  }

  function ratioCell(call) {
    const td = document.createElement("td");
    const live = health.get(call.id)?.payload.talk;
    const talk = (live && live.length ? live : call.summary?.talk) || [];
    if (!talk.length) return td;
    const bar = document.createElement("div");
    bar.className = "ratio";
    for (const s of talk) {
      const span = document.createElement("span");
      span.dataset.role = s.role;
      span.style.width = `${Math.round(s.ratio * 100)}%`;
      span.title = `${s.label}: ${Math.round(s.ratio * 100)} %`;
      bar.append(span);
    }
    const label = document.createElement("div");
    label.className = "ratio-label";
    label.textContent = talk.map((s) => `${s.label} ${Math.round(s.ratio * 100)}%`).join(" · ");
    td.append(bar, label);
    return td;
  }

  function healthCell(call) {
    const td = document.createElement("td");
    td.className = "health";
    const h = healthOf(call);
    if (!h) return td;
    td.dataset.stuck = h.stuck ? "true" : "false";
    const parts = [`${h.fps.toFixed(0)} pkt/s`, `last ${(h.lastPacket / 1000).toFixed(1)} s ago`];
    if (h.lag != null) parts.push(`caption lag ${h.lag} ms`);
    td.textContent = parts.join(" · ");
    return td;
  }

  function alertCell(call) {
    const td = document.createElement("td");
    const a = alerts.get(call.id);
    const count = Math.max(a?.count || 0, health.get(call.id)?.payload.alerts || 0);
    if (!count) return td;
    const badge = document.createElement("span");
    badge.className = "badge alert";
    badge.textContent = `${count} alert${count === 1 ? "" : "s"}`;
    td.append(badge);
    if (a?.latest) {
      const latest = document.createElement("div");
      latest.className = "latest-alert";
      latest.textContent = a.latest;
      td.append(latest);
    }
    wallTriage(td, call.id);
    return td;
  }

  // The wall's triage control: the newest alert of the call not yet resolved, its state, and
  // Acknowledge / Resolve buttons (posting to /alerts/<id>/<step>/). Every wall and call page
  // hears the change as alert.updated.
  function wallTriage(td, callId) {
    const table = document.getElementById("wall");
    const open = [...(unresolved.get(callId)?.values() || [])].sort((a, b) => (b.seq || 0) - (a.seq || 0));
    if (!open.length || !table?.dataset.triageUrl) return;
    const alert = open[0];
    const box = document.createElement("div");
    box.className = "triage";
    box.dataset.alert = alert.id;
    box.dataset.state = alert.state;
    const state = document.createElement("span");
    state.className = "badge alert-state";
    state.dataset.state = alert.state;
    state.textContent = alert.state === "acknowledged" ? `acknowledged by ${alert.acknowledged_by || "someone"}` : `${open.filter((a) => a.state === "open").length} open`;
    box.append(state);
    for (const step of alert.state === "open" ? ["acknowledge", "resolve"] : ["resolve"]) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.step = step;
      button.textContent = step === "acknowledge" ? "Acknowledge" : "Resolve";
      button.addEventListener("click", () => {
        const token = document.querySelector("#wall-triage input[name=csrfmiddlewaretoken]")?.value || "";
        fetch(table.dataset.triageUrl.replace("0/STEP", `${alert.id}/${step}`), {
          method: "POST",
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": token },
        })
          .then((response) => response.json())
          .then((answer) => {
            if (answer.alert) triaged(answer.alert);
            render();
          })
          .catch(() => {});
      });
      box.append(" ", button);
    }
    td.append(box);
  }

  function triaged(alert) {
    const known = unresolved.get(alert.call_id) || new Map();
    if (alert.state === "resolved") known.delete(alert.id);
    else known.set(alert.id, alert);
    unresolved.set(alert.call_id, known);
  }

  function participantsCell(call) {
    const td = document.createElement("td");
    td.className = "participants";
    const now = speaking.get(call.id) || new Map();
    const talk = health.get(call.id)?.payload.talk || [];
    call.participants.forEach((p, index) => {
      if (index) td.append(", ");
      const span = document.createElement("span");
      span.className = "participant";
      span.dataset.rawId = p.raw_id;
      const live = talk.find((s) => s.key === p.raw_id);
      const isSpeaking = now.has(p.raw_id) ? now.get(p.raw_id) : Boolean(live && live.speaking);
      span.dataset.speaking = isSpeaking ? "true" : "false";
      span.textContent = `${p.label} (${p.role})`;
      window.appendBadges(span, window.participantBadges(p, isSpeaking, live ? live.current_monologue_ms : 0));
      td.append(span);
    });
    return td;
  }

  function sentimentCell(call) {
    const td = document.createElement("td");
    td.className = "sentiment";
    const s = health.get(call.id)?.payload.sentiment || call.summary?.sentiment;
    if (!s || !s.trend.length) return td;
    const label = document.createElement("span");
    label.className = "badge sentiment";
    label.dataset.sentiment = s.latest || "";
    label.textContent = s.latest || "";
    td.append(window.sentimentSparkline(s.trend, s.latest), label);
    return td;
  }

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
      td.colSpan = COLUMNS;
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
      badge.textContent = window.callStateText(call);
      const state = document.createElement("td");
      state.append(badge);
      const h = healthOf(call);
      if (h && h.stuck) {
        const stuck = document.createElement("span");
        stuck.className = "badge stuck";
        stuck.textContent = "stuck";
        stuck.title = `no packet for ${(h.lastPacket / 1000).toFixed(0)} s`;
        state.append(" ", stuck);
        tr.dataset.stuck = "true";
      }
      tr.append(
        name,
        state,
        cell(window.formatDateTime(call.started_at)),
        cell(window.callDuration(call), "duration"),
        participantsCell(call),
        cell(call.transcript_source),
        ratioCell(call),
        sentimentCell(call),
        healthCell(call),
        alertCell(call),
      );
      rows.append(tr);
    }
  }

  window.connectLive("/ws/dashboard/", function (event) {
    if (event.type === "snapshot") {
      calls.clear();
      stuckSeconds = event.stuck_seconds || stuckSeconds;
      for (const call of event.calls) {
        call.summary = event.summaries ? event.summaries[call.id] : null;
        calls.set(call.id, call);
        const known = alerts.get(call.id);
        alerts.set(call.id, { count: call.summary?.alerts || 0, latest: known?.latest || "" });
        unresolved.set(call.id, new Map((call.summary?.unresolved || []).map((a) => [a.id, a])));
      }
    } else if (event.type === "call.updated") {
      const previous = calls.get(event.call.id);
      event.call.summary = previous ? previous.summary : null;
      calls.set(event.call.id, event.call);
    } else if (event.type === "call.participant") {
      window.mergeParticipant(calls.get(event.call_id), event.participant);
    } else if (event.type === "calls.health") {
      const at = Date.now();
      for (const payload of event.calls) {
        health.set(payload.call_id, { payload, at });
        // The tick's view of who speaks replaces what the changes said before it.
        speaking.set(payload.call_id, new Map(payload.talk.map((s) => [s.key, s.speaking])));
      }
    } else if (event.type === "speaking.changed") {
      const who = speaking.get(event.speaking.call_id) || new Map();
      who.set(event.speaking.key, event.speaking.speaking);
      speaking.set(event.speaking.call_id, who);
    } else if (event.type === "alert.fired") {
      const a = alerts.get(event.alert.call_id) || { count: 0, latest: "" };
      a.count += 1;
      a.latest = event.alert.message;
      alerts.set(event.alert.call_id, a);
      triaged(event.alert);
    } else if (event.type === "alert.updated") {
      triaged(event.alert);
    }
    render();
  });
  window.setInterval(render, 1000);
})();
