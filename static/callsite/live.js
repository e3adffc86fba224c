// A self-healing WebSocket: reconnects with backoff and tells the page when it is live.
// Every (re)connection starts with a snapshot from the server, so the page re-syncs itself.
// Closed with 4403 (access revoked), the page reloads, which leads to the login page.
// `path` may be a function, asked again on every reconnect (a call page resumes from the
// last event it has: ?after=<seq>).
(function () {
  "use strict";

  function setStatus(state, text) {
    const el = document.getElementById("live-status");
    if (el) {
      el.dataset.state = state;
      el.textContent = text;
    }
  }

  window.connectLive = function (path, onMessage) {
    let delay = 500;
    function open() {
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      const where = typeof path === "function" ? path() : path;
      const socket = new WebSocket(`${scheme}://${window.location.host}${where}`);
      socket.onopen = function () {
        delay = 500;
        setStatus("live", "live");
      };
      socket.onmessage = function (message) {
        const event = JSON.parse(message.data);
        window.stampCalls(event);
        onMessage(event);
      };
      socket.onclose = function (event) {
        if (event.code === 4403) {
          // Logged out or no longer allowed: the page itself sends the user to log in.
          setStatus("offline", "signed out");
          window.location.reload();
          return;
        }
        setStatus("offline", "reconnecting…");
        window.setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
  };

  // Durations as everywhere in Callsite (streaming/units.py): whole seconds rounded half up,
  // m:ss under an hour, h:mm:ss from an hour on.
  window.formatDuration = function (seconds) {
    const s = Number.isFinite(seconds) && seconds > 0 ? Math.floor(seconds + 0.5) : 0;
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
  };

  // Whole seconds for parts of a whole (ms) that add up to the whole's rounded seconds: the
  // seconds the floors leave over go to the parts with the largest remainders.
  window.secondsAddingUp = function (parts, total) {
    const whole = total > 0 ? Math.floor(total / 1000 + 0.5) : 0;
    const floors = parts.map((p) => Math.max(0, Math.floor(p / 1000)));
    let spare = whole - floors.reduce((a, b) => a + b, 0);
    const order = parts.map((p, i) => i).sort((a, b) => (parts[b] % 1000) - (parts[a] % 1000));
    for (const i of order) {
      if (spare <= 0) break;
      floors[i] += 1;
      spare -= 1;
    }
    return floors;
  };

  // A call's duration by the server's clock: `duration_ms` as the server sent it, counted on
  // from when it arrived while the call goes on (the browser's own clock may be wrong).
  window.callDuration = function (call) {
    if (!call || call.duration_ms == null) return "";
    let ms = call.duration_ms;
    if (call.state !== "ended" && call.received_at) ms += Date.now() - call.received_at;
    return window.formatDuration(ms / 1000);
  };

  // Dates and times in the page's time zone (the viewer's: see timezone.js), one format:
  // 2026-12-03 14:05:09.
  const zone = document.documentElement.dataset.timeZone || undefined;
  let dateFormat;
  try {
    dateFormat = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
  } catch (error) {
    dateFormat = new Intl.DateTimeFormat("en-GB", {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
  }
  window.formatDateTime = function (iso) {
    if (!iso) return "";
    const parts = {};
    for (const part of dateFormat.formatToParts(new Date(iso))) parts[part.type] = part.value;
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
  };

  const END_REASONS = { stream_lost: "stream lost" };
  // "connected", "ended", or how it ended when that says more ("ended: stream lost").
  window.callStateText = function (call) {
    const reason = END_REASONS[call.end_reason];
    return call.state === "ended" && reason ? `ended: ${reason}` : call.state;
  };

  // A call's name for people, as dashboard.views.call_title makes it: "Dana Whitfield with
  // +15551230000", else whoever is known, else its connection id.
  window.callTitle = function (call) {
    const people = call.participants || [];
    const agents = people.filter((p) => p.role === "agent").map((p) => p.label);
    let others = people.filter((p) => p.role !== "agent").map((p) => p.label);
    if (!others.length && (call.caller_display_name || call.caller)) others = [call.caller_display_name || call.caller];
    if (agents.length && others.length) return `${agents.join(", ")} with ${others.join(", ")}`;
    if (agents.length) return agents.join(", ");
    if (others.length) return `Call with ${others.join(", ")}`;
    return `Call ${call.connection_id || "(ringing)"}`;
  };

  // A participant joined or changed (call.participant): merged into the call, by id.
  window.mergeParticipant = function (call, participant) {
    if (!call) return;
    const index = call.participants.findIndex((p) => p.id === participant.id);
    if (index >= 0) call.participants[index] = participant;
    else call.participants.push(participant);
  };

  // "on hold 0:42" (counting on from when the hold began, by the browser's clock),
  // "muted", "speaking 0:07": a participant's live badges, as text.
  window.participantBadges = function (p, speaking, monologueMs) {
    const badges = [];
    if (speaking) badges.push(monologueMs >= 1000 ? `speaking ${window.formatDuration(monologueMs / 1000)}` : "speaking");
    if (p.is_on_hold) {
      const since = p.held_since ? Date.parse(p.held_since) : NaN;
      const held = Number.isFinite(since) ? Date.now() - since : 0;
      badges.push(`on hold ${window.formatDuration(Math.max(0, held) / 1000)}`);
    }
    if (p.is_muted) badges.push("muted");
    return badges;
  };

  // Append a participant's badges (participantBadges' texts) to `el`.
  window.appendBadges = function (el, texts) {
    for (const text of texts) {
      const badge = document.createElement("span");
      badge.className = "badge flag";
      badge.dataset.flag = text.split(" ")[0];
      badge.textContent = text;
      el.append(" ", badge);
    }
  };

  // A small line of the last finals' sentiment (-1 negative .. 1 positive), as inline SVG.
  window.sentimentSparkline = function (values, latest) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "sentiment-trend");
    svg.setAttribute("viewBox", "0 0 100 24");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `sentiment ${latest || "unknown"}, ${values.length} finals`);
    svg.dataset.latest = latest || "";
    if (values.length) {
      const step = values.length > 1 ? 100 / (values.length - 1) : 0;
      const points = values.map((v, i) => `${(i * step).toFixed(1)},${(12 - v * 10).toFixed(1)}`);
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", values.length > 1 ? points.join(" ") : `0,${points[0].split(",")[1]} 100,${points[0].split(",")[1]}`);
      svg.append(line);
    }
    return svg;
  };

  // Calls arrive in snapshots and updates; each remembers when, for callDuration.
  window.stampCalls = function (event) {
    const now = Date.now();
    if (event.call) event.call.received_at = now;
    for (const call of event.calls || []) {
      if (call && typeof call === "object" && "duration_ms" in call) call.received_at = now;
    }
  };
})();