// The agents page: each agent the supervisor watches, live, from the call wall's socket
// (docs/dashboard.md#agents-now). An agent is in a call when one of their addresses is a
// participant still in a live call; they are talking (the call's speaking state), on hold,
// muted or in the call, else idle since their last call ended. Rows are the server's, keyed
// by agent id; only the cells whose text changed are written.
(function () {
  "use strict";
  const data = document.getElementById("agents-data");
  const agents = data ? JSON.parse(data.textContent) : [];
  const calls = new Map(); // call id -> CallPayload
  const speaking = new Map(); // call id -> Map(raw id -> speaking now)
  const talkingSince = new Map(); // "call id raw id" -> ms since the epoch
  const quietSince = new Map(); // "call id raw id" -> when they last stopped talking
  const endedAt = new Map(); // agent id -> ms since the epoch of their last call's end
  const rows = new Map();
  for (const agent of agents) {
    agent.ids = new Set(agent.addresses);
    if (agent.last_call_ended_at) endedAt.set(agent.id, Date.parse(agent.last_call_ended_at));
    const row = document.querySelector(`#agents-rows tr[data-agent="${agent.id}"]`);
    if (row) rows.set(agent.id, row);
  }
  const summary = document.getElementById("agents-summary");
  const LABELS = { talking: "Talking", "on-hold": "On hold", muted: "Muted", "in-call": "In a call", idle: "Idle" };
  const ORDER = ["talking", "on-hold", "muted", "in-call", "idle"];

  function setSpeaking(callId, rawId, now) {
    const who = speaking.get(callId) || new Map();
    const key = `${callId} ${rawId}`;
    if (now && !who.get(rawId)) talkingSince.set(key, Date.now());
    if (!now && who.get(rawId)) quietSince.set(key, Date.now());
    if (!now) talkingSince.delete(key);
    who.set(rawId, now);
    speaking.set(callId, who);
  }

  function customerOf(call, agent) {
    const other = (call.participants || []).find((p) => !agent.ids.has(p.raw_id) && p.role !== "agent" && p.in_call !== false);
    return other ? other.label : call.caller_display_name || call.caller || "";
  }

  // What the agent is doing now, since when (ms since the epoch, or null), and the call.
  function stateOf(agent) {
    let found = null;
    for (const call of calls.values()) {
      if (call.state === "ended") {
        if ((call.participants || []).some((p) => agent.ids.has(p.raw_id)) && call.ended_at) {
          endedAt.set(agent.id, Math.max(endedAt.get(agent.id) || 0, Date.parse(call.ended_at)));
        }
        continue;
      }
      const p = (call.participants || []).find((q) => agent.ids.has(q.raw_id) && q.in_call !== false);
      if (p && (!found || Date.parse(call.started_at || 0) > Date.parse(found.call.started_at || 0))) {
        found = { call, p };
      }
    }
    if (!found) return { state: "idle", since: endedAt.get(agent.id) ?? null, call: null };
    const { call, p } = found;
    const started = call.started_at ? Date.parse(call.started_at) : null;
    if (p.is_on_hold) return { state: "on-hold", since: p.held_since ? Date.parse(p.held_since) : started, call };
    if (speaking.get(call.id)?.get(p.raw_id)) {
      return { state: "talking", since: talkingSince.get(`${call.id} ${p.raw_id}`) ?? null, call };
    }
    if (p.is_muted) return { state: "muted", since: p.muted_since ? Date.parse(p.muted_since) : started, call };
    // In the call since it started, or since they last stopped talking, or a hold or a
    // mute ended, whichever came last.
    const ends = [...(p.hold_periods || []), ...(p.mute_periods || [])].map(([, end]) => (end ? Date.parse(end) : NaN));
    const since = Math.max(started ?? 0, quietSince.get(`${call.id} ${p.raw_id}`) ?? 0, ...ends.filter(Number.isFinite));
    return { state: "in-call", since: since || null, call };
  }

  function setText(cell, text) {
    if (cell.textContent !== text) cell.textContent = text;
  }

  function render() {
    const counts = new Map(ORDER.map((s) => [s, 0]));
    const now = Date.now();
    for (const agent of agents) {
      const row = rows.get(agent.id);
      const { state, since, call } = stateOf(agent);
      counts.set(state, counts.get(state) + 1);
      if (!row) continue;
      if (row.dataset.state !== state) {
        row.dataset.state = state;
        const badge = row.querySelector(".agent-state");
        badge.textContent = LABELS[state];
        badge.dataset.state = state;
      }
      const sinceCell = row.querySelector('[data-cell="since"]');
      setText(sinceCell, since == null ? "" : window.formatDuration(Math.max(0, now - since) / 1000));
      const callCell = row.querySelector('[data-cell="call"]');
      const customer = call ? customerOf(call, agent) : "";
      const key = call ? `${call.id} ${customer}` : "";
      if (callCell.dataset.call !== key) {
        callCell.dataset.call = key;
        if (call) {
          const link = document.createElement("a");
          link.href = `/calls/${call.id}/`;
          link.textContent = customer ? `with ${customer}` : "Open the call";
          callCell.replaceChildren(link);
        } else {
          callCell.replaceChildren();
        }
      }
    }
    if (summary) {
      const parts = ORDER.filter((s) => counts.get(s)).map((s) => `${counts.get(s)} ${LABELS[s].toLowerCase()}`);
      setText(summary, agents.length ? parts.join(" · ") : "No agents");
    }
  }

  window.connectLive("/ws/dashboard/", function (event) {
    if (event.type === "snapshot") {
      calls.clear();
      for (const call of event.calls) calls.set(call.id, call);
    } else if (event.type === "call.updated") {
      calls.set(event.call.id, event.call);
    } else if (event.type === "call.participant") {
      window.mergeParticipant(calls.get(event.call_id), event.participant);
    } else if (event.type === "calls.health") {
      for (const payload of event.calls) {
        for (const s of payload.talk || []) setSpeaking(payload.call_id, s.key, Boolean(s.speaking));
      }
    } else if (event.type === "speaking.changed") {
      setSpeaking(event.speaking.call_id, event.speaking.key, Boolean(event.speaking.speaking));
    }
    render();
  });
  window.setInterval(render, 1000);
  render();
})();
