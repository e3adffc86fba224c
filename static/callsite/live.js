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
        onMessage(JSON.parse(message.data));
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

  window.formatDuration = function (seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
  };

  window.callDuration = function (call) {
    if (!call.started_at) return "";
    const end = call.ended_at ? new Date(call.ended_at) : new Date();
    return window.formatDuration((end - new Date(call.started_at)) / 1000);
  };
})();
