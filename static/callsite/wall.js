// The call wall: one row per call, kept in sync from the overview socket, ordered by what
// needs a supervisor (docs/dashboard.md#the-call-wall).
//
// Rows are keyed by call id and built once; each cell is redrawn only when what it shows
// changed, and rows are moved around the row holding the keyboard focus (or the pointer)
// rather than that row itself, so focus, hover and clicks survive updates.
//
// Besides call state, each ingest process sends `calls.health` once a second for its live
// calls. The page ages that health itself between messages, so a call whose ingest process
// went silent is flagged as stuck too.
(function () {
  "use strict";
  const calls = new Map();
  const health = new Map(); // call id -> {payload, at}
  const alerts = new Map(); // call id -> {count, latest: AlertPayload | null}
  const unresolved = new Map(); // call id -> Map(alert id -> alert), not yet resolved
  const speaking = new Map(); // call id -> Map(raw id -> speaking now)
  const teams = new Map(); // call id -> [team name]
  const rowsById = new Map(); // call id -> <tr>
  let stuckSeconds = 10;
  let endedKeepSeconds = 300;
  let silenceSeconds = 10;
  const NO_AUDIO_MS = 3000; // a live stream's packets come every 20 ms: 3 s without is a gap
  const CAPTIONS_BEHIND_MS = 1000;
  const rows = document.getElementById("wall-rows");
  const empty = document.getElementById("wall-empty");
  const announcer = document.getElementById("wall-announcer");
  const filters = {
    attention: document.getElementById("filter-attention"),
    team: document.getElementById("filter-team"),
    state: document.getElementById("filter-state"),
  };
  const notify = document.getElementById("notify-alerts");

  // The call's alerts not yet resolved, newest first.
  function pending(callId) {
    return [...(unresolved.get(callId)?.values() || [])].sort((a, b) => (b.seq || 0) - (a.seq || 0) || b.id - a.id);
  }

  // An alert that still needs the supervisor: open, neither acknowledged nor resolved.
  function openAlert(callId) {
    const open = pending(callId).filter((a) => a.state === "open");
    return open.length ? { count: open.length, latest: open[0] } : null;
  }

  function healthOf(call) {
    const entry = health.get(call.id);
    if (!entry || call.state === "ended") return null;
    const age = Date.now() - entry.at;
    const lastPacket = entry.payload.last_packet_ms + age;
    const silence = entry.payload.current_silence_ms || 0;
    return {
      fps: entry.payload.frames_per_second,
      lastPacket,
      lag: entry.payload.caption_lag_ms,
      silence: silence > 0 ? silence + age : 0,
      stuck: entry.payload.stuck || lastPacket >= stuckSeconds * 1000,
    };
  }

  function onHold(call) {
    return call.participants.some((p) => p.is_on_hold && p.in_call !== false);
  }

  // 0: an open alert, 1: stuck, 2: silent or on hold now, 3: any other live call, 4: ended.
  function attention(call) {
    if (call.state === "ended") return { rank: 4, why: "" };
    if (openAlert(call.id)) return { rank: 0, why: "alert" };
    const h = healthOf(call);
    if (h && h.stuck) return { rank: 1, why: "stuck" };
    if (onHold(call)) return { rank: 2, why: "hold" };
    if (h && h.silence >= silenceSeconds * 1000) return { rank: 2, why: "silence" };
    return { rank: 3, why: "" };
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
            schedule();
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

  function durationMs(call) {
    if (!call.started_at) return 0;
    const base = call.duration_ms || 0;
    return call.state === "ended" ? base : base + (Date.now() - (call.received_at || Date.now()));
  }

  function compare(a, b) {
    if (a.attention.rank !== b.attention.rank) return a.attention.rank - b.attention.rank;
    if (a.attention.rank === 4) return (b.call.ended_at || "").localeCompare(a.call.ended_at || "");
    return durationMs(b.call) - durationMs(a.call) || b.call.id - a.call.id;
  }

  // --- cells: each built from a key; redrawn only when the key changes ---------------------

  function update(td, key, build) {
    if (td.dataset.key === key) return;
    td.dataset.key = key;
    td.replaceChildren(...build());
  }

  function participantSpan(call, p, withLabel) {
    const now = speaking.get(call.id) || new Map();
    const talk = health.get(call.id)?.payload.talk || [];
    const live = talk.find((s) => s.key === p.raw_id);
    const isSpeaking = now.has(p.raw_id) ? now.get(p.raw_id) : Boolean(live && live.speaking);
    const span = document.createElement("span");
    span.className = "participant";
    span.dataset.rawId = p.raw_id;
    span.dataset.speaking = isSpeaking ? "true" : "false";
    if (withLabel) span.textContent = p.label;
    const badges = window.participantBadges(p, isSpeaking, live ? live.current_monologue_ms : 0);
    window.appendBadges(span, badges);
    return [span, `${p.raw_id}:${withLabel ? p.label : ""}:${badges.join("|")}`];
  }

  function agents(call) {
    return call.participants.filter((p) => p.role === "agent" && p.in_call !== false);
  }

  function others(call) {
    return call.participants.filter((p) => p.role !== "agent" && p.in_call !== false);
  }

  function callName(call) {
    const names = agents(call).map((p) => p.label);
    if (names.length) return names.join(", ");
    if (call.state === "ringing") return `Ringing: ${call.caller_display_name || call.caller || "unknown caller"}`;
    return "No agent yet";
  }

  function whoCell(row, call) {
    const link = row.querySelector("a.call-link");
    const name = callName(call);
    if (link.textContent !== name) link.textContent = name;
    const built = agents(call).map((p) => participantSpan(call, p, false));
    update(row.cells[0].querySelector(".agent-badges"), built.map((b) => b[1]).join(","), () =>
      built.map((b) => b[0]),
    );
  }

  function customerCell(td, call) {
    const built = others(call).map((p) => participantSpan(call, p, true));
    const fallback = built.length ? "" : call.caller_display_name || call.caller || "";
    update(td, built.map((b) => b[1]).join(",") + fallback, () => {
      if (!built.length) return [fallback];
      const out = [];
      built.forEach((b, i) => {
        if (i) out.push(", ");
        out.push(b[0]);
      });
      return out;
    });
  }

  function lineText(call) {
    if (call.room_id) return `room ${call.room_id}`;
    return call.callee || "";
  }

  function stateCell(td, call, h, why) {
    const items = [[window.callStateText(call), call.state, "badge"]];
    if (h && h.stuck) items.push([`no audio for ${Math.round(h.lastPacket / 1000)} s`, "", "badge stuck"]);
    if (why === "hold") items.push(["on hold", "", "badge flag hold"]);
    if (why === "silence") items.push([`silent ${Math.round(h.silence / 1000)} s`, "", "badge flag silence"]);
    update(td, JSON.stringify(items), () =>
      items.flatMap(([text, state, className], i) => {
        const badge = document.createElement("span");
        badge.className = className;
        if (state) badge.dataset.state = state;
        badge.textContent = text;
        return i ? [" ", badge] : [badge];
      }),
    );
  }

  function ratioCell(td, call) {
    const live = health.get(call.id)?.payload.talk;
    const talk = (live && live.length ? live : call.summary?.talk) || [];
    const shares = talk.map((s) => [s.role, s.label, Math.round(s.ratio * 100)]);
    update(td, JSON.stringify(shares), () => {
      if (!shares.length) return [];
      const bar = document.createElement("div");
      bar.className = "ratio";
      bar.setAttribute("role", "img");
      const label = shares.map(([, name, pct]) => `${name} ${pct}%`).join(" · ");
      bar.setAttribute("aria-label", `talk time: ${label}`);
      for (const [role, name, pct] of shares) {
        const span = document.createElement("span");
        span.dataset.role = role;
        span.style.width = `${pct}%`;
        span.title = `${name}: ${pct} %`;
        bar.append(span);
      }
      const text = document.createElement("div");
      text.className = "ratio-label";
      text.textContent = label;
      return [bar, text];
    });
  }

  function sentimentCell(td, call) {
    const s = health.get(call.id)?.payload.sentiment || call.summary?.sentiment;
    const key = s && s.trend.length ? `${s.latest}:${s.trend.join(",")}` : "";
    update(td, key, () => {
      if (!key) return [];
      const label = document.createElement("span");
      label.className = "badge sentiment";
      label.dataset.sentiment = s.latest || "";
      label.textContent = s.latest || "";
      return [window.sentimentSparkline(s.trend, s.latest), label];
    });
  }

  // Health in a supervisor's words; the figures behind them in the cell's title.
  function healthWords(h) {
    if (!h) return ["", ""];
    const seconds = h.lastPacket / 1000;
    const words = [seconds * 1000 >= NO_AUDIO_MS ? `no audio for ${Math.round(seconds)} s` : "audio OK"];
    if (h.lag != null && h.lag >= CAPTIONS_BEHIND_MS) words.push(`captions ${(h.lag / 1000).toFixed(1)} s behind`);
    // Rounded, so the title (read on hover) is not rewritten on every health tick.
    const newest = seconds < 2 ? "audio arriving" : `newest ${Math.round(seconds)} s ago`;
    const detail = [`about ${Math.round(h.fps / 10) * 10} packets a second`, newest];
    if (h.lag != null) detail.push(`captions ${(Math.round(h.lag / 500) / 2).toFixed(1)} s after speech`);
    return [words.join(" · "), detail.join(", ")];
  }

  function healthCell(td, h) {
    const [words, detail] = healthWords(h);
    if (td.textContent !== words) td.textContent = words;
    if (td.title !== detail) td.title = detail;
    const stuck = h ? (h.stuck ? "true" : "false") : "";
    if (td.dataset.stuck !== stuck) td.dataset.stuck = stuck;
  }

  // Every alert of the call counted, the latest one's words, and the triage control of the
  // newest one not yet resolved.
  function alertCell(td, call) {
    const a = alerts.get(call.id);
    const count = Math.max(a?.count || 0, health.get(call.id)?.payload.alerts || 0);
    const latest = a?.latest || null;
    const next = pending(call.id)[0];
    const key = count ? `${count}:${latest ? latest.id : ""}:${next ? `${next.id}/${next.state}/${next.acknowledged_by || ""}` : ""}` : "";
    update(td, key, () => {
      if (!count) return [];
      const badge = document.createElement("span");
      badge.className = "badge alert";
      badge.textContent = `${count} alert${count === 1 ? "" : "s"}`;
      const out = [badge];
      if (latest) {
        const text = document.createElement("span");
        text.className = "latest-alert";
        text.dataset.kind = latest.kind;
        text.textContent = latest.message;
        text.title = latest.message;
        out.push(" ", text);
      }
      const holder = document.createElement("span");
      wallTriage(holder, call.id);
      out.push(...holder.childNodes);
      return out;
    });
  }

  // --- rows ---------------------------------------------------------------------------------

  const CELLS = ["who", "customer", "line", "duration", "state", "talk", "sentiment", "health", "alerts"];

  function newRow(call) {
    const tr = document.createElement("tr");
    tr.dataset.callId = call.id;
    for (const name of CELLS) {
      const td = document.createElement("td");
      td.className = name;
      td.dataset.label = document.querySelector(`#wall th[data-cell="${name}"]`)?.textContent || "";
      tr.append(td);
    }
    const marker = document.createElement("span");
    marker.className = "marker";
    marker.setAttribute("aria-hidden", "true");
    const link = document.createElement("a");
    link.className = "call-link";
    link.href = `/calls/${call.id}/`;
    const badges = document.createElement("span");
    badges.className = "agent-badges";
    tr.cells[0].append(marker, link, badges);
    return tr;
  }

  function fill(tr, call, why) {
    const h = healthOf(call);
    if (tr.dataset.state !== call.state) tr.dataset.state = call.state;
    if (tr.dataset.attention !== why) tr.dataset.attention = why;
    const stuck = h && h.stuck ? "true" : "false";
    if (tr.dataset.stuck !== stuck) tr.dataset.stuck = stuck;
    const marker = tr.querySelector(".marker");
    const markerTitle = { alert: "needs you: an alert", stuck: "needs you: no audio", hold: "on hold", silence: "silent" }[why] || "";
    if (marker.title !== markerTitle) marker.title = markerTitle;
    whoCell(tr, call);
    customerCell(tr.cells[1], call);
    const line = lineText(call);
    if (tr.cells[2].textContent !== line) tr.cells[2].textContent = line;
    const duration = window.callDuration(call);
    if (tr.cells[3].textContent !== duration) tr.cells[3].textContent = duration;
    stateCell(tr.cells[4], call, h, why);
    ratioCell(tr.cells[5], call);
    sentimentCell(tr.cells[6], call);
    healthCell(tr.cells[7], h);
    alertCell(tr.cells[8], call);
  }

  function shown(call, why) {
    if (filters.attention?.checked && !why) return false;
    const team = filters.team?.value;
    if (team && !(teams.get(call.id) || []).includes(team)) return false;
    const state = filters.state?.value;
    if (state === "live" && call.state === "ended") return false;
    if (state && state !== "live" && call.state !== state) return false;
    return true;
  }

  // Put `ordered` in order, never moving `pinned`: the others move around it.
  function arrange(ordered, pinned) {
    let cursor = rows.firstElementChild;
    for (const tr of ordered) {
      if (tr === cursor) {
        cursor = cursor.nextElementSibling;
      } else if (tr === pinned) {
        cursor = pinned.nextElementSibling;
      } else {
        rows.insertBefore(tr, cursor);
      }
    }
  }

  function forgetEnded() {
    const now = Date.now();
    for (const call of calls.values()) {
      if (call.state !== "ended" || !call.ended_at) continue;
      if (now - Date.parse(call.ended_at) > endedKeepSeconds * 1000) {
        calls.delete(call.id);
        rowsById.get(call.id)?.remove();
        rowsById.delete(call.id);
      }
    }
  }

  function render() {
    forgetEnded();
    for (const [id, tr] of rowsById) {
      if (!calls.has(id)) {
        tr.remove();
        rowsById.delete(id);
      }
    }
    const entries = [...calls.values()].map((call) => ({ call, attention: attention(call) }));
    entries.sort(compare);
    let visible = 0;
    for (const { call, attention: a } of entries) {
      let tr = rowsById.get(call.id);
      if (!tr) {
        tr = newRow(call);
        rowsById.set(call.id, tr);
      }
      fill(tr, call, a.why);
      const hide = !shown(call, a.why);
      if (tr.hidden !== hide) tr.hidden = hide;
      if (!hide) visible += 1;
    }
    const focused = document.activeElement?.closest?.("#wall-rows tr");
    const pinned = focused || rows.querySelector("tr:hover");
    arrange(entries.map((e) => rowsById.get(e.call.id)), pinned);
    const message = calls.size ? (visible ? "" : "No call matches these filters.") : "Waiting for calls…";
    if (empty.textContent !== message) empty.textContent = message;
    empty.hidden = !message;
  }

  let scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    window.requestAnimationFrame(() => {
      scheduled = false;
      render();
    });
  }

  // --- filters and notifications -----------------------------------------------------------

  function setTeams(names) {
    if (!filters.team) return;
    const chosen = new URLSearchParams(window.location.search).get("team") || filters.team.value;
    const options = [["", "All teams"], ...names.map((n) => [n, n])];
    filters.team.replaceChildren(
      ...options.map(([value, text]) => {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = text;
        return option;
      }),
    );
    filters.team.value = names.includes(chosen) ? chosen : "";
    filters.team.closest("label").hidden = !names.length;
  }

  function readFilters() {
    const query = new URLSearchParams(window.location.search);
    if (filters.attention) filters.attention.checked = query.get("attention") === "1";
    if (filters.state) filters.state.value = query.get("state") || "";
  }

  function saveFilters() {
    const query = new URLSearchParams();
    if (filters.attention?.checked) query.set("attention", "1");
    if (filters.team?.value) query.set("team", filters.team.value);
    if (filters.state?.value) query.set("state", filters.state.value);
    const search = query.toString();
    window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
    schedule();
  }

  for (const control of Object.values(filters)) control?.addEventListener("change", saveFilters);
  readFilters();

  if (notify) {
    notify.checked = window.localStorage.getItem("callsite.notify") === "1";
    notify.addEventListener("change", () => {
      window.localStorage.setItem("callsite.notify", notify.checked ? "1" : "0");
      if (notify.checked && "Notification" in window && Notification.permission === "default") {
        Notification.requestPermission();
      }
    });
  }

  function beep() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    const context = new Context();
    const tone = context.createOscillator();
    const gain = context.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, context.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, context.currentTime + 0.4);
    tone.connect(gain).connect(context.destination);
    tone.start();
    tone.stop(context.currentTime + 0.4);
    tone.onended = () => context.close();
  }

  function alertFired(alert) {
    const call = calls.get(alert.call_id);
    const name = call ? callName(call) : "a call";
    announcer.textContent = `Alert on ${name}: ${alert.message}`;
    if (!notify?.checked) return;
    beep();
    if ("Notification" in window && Notification.permission === "granted") {
      const note = new Notification(`Callsite: alert on ${name}`, { body: alert.message, tag: `alert-${alert.id}` });
      note.onclick = () => {
        window.focus();
        window.location.href = `/calls/${alert.call_id}/`;
      };
    }
  }

  window.connectLive("/ws/dashboard/", function (event) {
    if (event.type === "snapshot") {
      calls.clear();
      stuckSeconds = event.stuck_seconds || stuckSeconds;
      endedKeepSeconds = event.ended_keep_seconds ?? endedKeepSeconds;
      silenceSeconds = event.silence_seconds || silenceSeconds;
      setTeams(event.teams || []);
      for (const call of event.calls) {
        call.summary = event.summaries ? event.summaries[call.id] : null;
        calls.set(call.id, call);
        teams.set(call.id, call.summary?.teams || []);
        alerts.set(call.id, { count: call.summary?.alerts || 0, latest: call.summary?.latest_alert || null });
        unresolved.set(call.id, new Map((call.summary?.unresolved || []).map((a) => [a.id, a])));
      }
    } else if (event.type === "call.updated") {
      const previous = calls.get(event.call.id);
      event.call.summary = previous ? previous.summary : null;
      calls.set(event.call.id, event.call);
    } else if (event.type === "call.teams") {
      teams.set(event.call_id, event.teams);
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
      const a = alerts.get(event.alert.call_id) || { count: 0, latest: null };
      a.count += 1;
      a.latest = event.alert;
      alerts.set(event.alert.call_id, a);
      triaged(event.alert);
      alertFired(event.alert);
    } else if (event.type === "alert.updated") {
      triaged(event.alert);
    }
    schedule();
  });
  window.setInterval(schedule, 1000);
})();
