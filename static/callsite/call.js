// One call's page: participants, captions, alerts and talk-time charts.
//
// Finals and alerts carry the call's sequence number `seq`; the page remembers the highest it
// has and reconnects with ?after=<seq>, so it gets exactly what it missed. Finals are also
// keyed by utterance id, so a caption seen twice is drawn once. Each speaker has at most one
// interim line, replaced in place until their final arrives.
(function () {
  "use strict";
  const root = document.getElementById("call");
  const callId = root.dataset.callId;
  const captions = document.getElementById("captions");
  const empty = document.getElementById("captions-empty");
  const followButton = document.getElementById("follow");
  const alertList = document.getElementById("alerts");
  let call = null;
  let lastSeq = 0;
  let lowConfidence = 0.6;
  let following = true;
  let chartsMounted = false;
  let latestAnalytics = null;
  let drawnParticipants = "";
  const actions = new Map(); // supervisor actions by id: the audit trail and pending states
  const controls = document.getElementById("call-controls");
  const kinds = new Set(controls ? controls.dataset.kinds.split(" ").filter(Boolean) : []);
  const speaking = new Map(); // participant raw id -> speaking now
  const trend = new Map(); // utterance id -> [offset ticks, sentiment value, sentiment]
  const finalMarks = new Map(); // utterance id -> its sentiment's mark on the timeline
  const toneMarks = new Map(); // DTMF event id -> its mark on the timeline
  const seekable = document.getElementById("player") !== null; // a recording to play

  function speakerKey(caption) {
    return caption.participant ? caption.participant.raw_id : "unknown";
  }

  function ticksToClock(ticks) {
    return ticks == null ? "" : window.formatDuration(ticks / 1e7);
  }

  function msToClock(ms) {
    return window.formatDuration(ms / 1000);
  }

  // --- captions -------------------------------------------------------------------------

  function atBottom() {
    return captions.scrollTop + captions.clientHeight >= captions.scrollHeight - 40;
  }

  captions.addEventListener("scroll", function () {
    following = atBottom();
    followButton.hidden = following;
  });

  followButton.addEventListener("click", function () {
    following = true;
    followButton.hidden = true;
    captions.scrollTop = captions.scrollHeight;
  });

  function bare(token) {
    return token.toLocaleLowerCase().replace(/[^\p{L}\p{N}']/gu, "");
  }

  // The caption's text, with words recognized below the confidence threshold marked. Words
  // are matched to the display text in order, so punctuation and capitals are kept.
  function textWithConfidence(caption) {
    const p = document.createElement("p");
    p.className = "text";
    const words = (caption.words || []).filter((w) => w.confidence != null);
    if (!words.length) {
      p.textContent = caption.text;
      return p;
    }
    let next = 0;
    const tokens = caption.text.split(/(\s+)/);
    for (const token of tokens) {
      const word = words[next];
      if (word && token.trim() && bare(token) === bare(word.text)) {
        next += 1;
        if (word.confidence < lowConfidence) {
          const mark = document.createElement("mark");
          mark.className = "low-confidence";
          mark.title = `confidence ${Math.round(word.confidence * 100)} %`;
          mark.textContent = token;
          p.append(mark);
          continue;
        }
      }
      p.append(document.createTextNode(token));
    }
    return p;
  }

  // A transcript line's shell: who (a participant payload) and when (ticks).
  function lineShell(className, participant, offset) {
    const el = document.createElement("div");
    el.className = className;
    el.dataset.offset = offset == null ? "" : offset;
    el.dataset.role = participant ? participant.role : "unknown";
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "speaker";
    who.textContent = participant ? participant.label : "Unknown speaker";
    const when = document.createElement("span");
    when.className = "time";
    when.textContent = ticksToClock(offset);
    meta.append(who, when);
    return [el, meta];
  }

  function buildCaption(caption) {
    const kind = `caption ${caption.final ? "final" : "interim"}`;
    const [el, meta] = lineShell(kind, caption.participant, caption.offset_ticks);
    if (!caption.final) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "speaking…";
      meta.append(tag);
    } else if (caption.confidence != null) {
      const conf = document.createElement("span");
      conf.className = "confidence";
      conf.textContent = `${Math.round(caption.confidence * 100)} %`;
      meta.append(conf);
    }
    if (caption.sentiment) {
      const badge = document.createElement("span");
      badge.className = "badge sentiment";
      badge.dataset.sentiment = caption.sentiment;
      badge.dataset.source = caption.sentiment_source || "";
      badge.textContent = caption.sentiment;
      badge.title = caption.sentiment_source === "lexicon"
        ? "sentiment from Callsite's offline lexicon scorer"
        : "sentiment from ACS";
      meta.append(badge);
    }
    if (caption.language) {
      const lang = document.createElement("span");
      lang.className = "badge language";
      lang.textContent = caption.language;
      meta.append(lang);
    }
    el.append(meta, textWithConfidence(caption));
    return el;
  }

  const SENTIMENT_VALUES = { positive: 1, negative: -1, neutral: 0, mixed: 0 };

  function noteSentiment(caption) {
    if (!caption.sentiment || caption.utterance_id == null) return;
    const value = caption.sentiment_score ?? SENTIMENT_VALUES[caption.sentiment] ?? 0;
    trend.set(caption.utterance_id, [caption.offset_ticks ?? 0, value, caption.sentiment]);
    if (caption.offset_ticks == null) return;
    const start = caption.offset_ticks / 1e7;
    finalMarks.set(caption.utterance_id, {
      kind: "sentiment", key: speakerKey(caption), value: caption.sentiment,
      start_s: start, end_s: start + (caption.duration_ticks || 0) / 1e7,
      text: `${caption.sentiment}${caption.sentiment_source === "lexicon" ? " (lexicon)" : ""}`,
    });
  }

  // Holds and mutes from the participants' periods, and the call's pauses for payment (ISO
  // times, placed on the call's timeline from its origin); one still going on ends now, to
  // the second (or when the call ended).
  function periodMarks() {
    const origin = call && call.timeline_origin ? Date.parse(call.timeline_origin) : NaN;
    if (!Number.isFinite(origin)) return [];
    const now = call.ended_at ? Date.parse(call.ended_at) : Math.floor(Date.now() / 1000) * 1000;
    const out = [];
    const kinds = (call.participants || []).flatMap((p) => [
      ["hold", p.raw_id, p.hold_periods, "on hold"], ["mute", p.raw_id, p.mute_periods, "muted"],
    ]);
    kinds.push(["pause", "*", call.secure_pause_periods, "paused for payment"]);
    for (const [kind, key, periods, word] of kinds) {
      for (const [start, end] of periods || []) {
        const from = Date.parse(start);
        const to = end ? Date.parse(end) : now;
        if (!Number.isFinite(from) || !Number.isFinite(to)) continue;
        const seconds = Math.max(0, (to - from) / 1000);
        out.push({
          kind, key, start_s: Math.max(0, (from - origin) / 1000),
          end_s: Math.max(0, (to - origin) / 1000),
          text: kind === "pause"
            ? `${word} (${window.formatDuration(seconds)}${end ? "" : " so far"})`
            : `${word} for ${window.formatDuration(seconds)}${end ? "" : " so far"}`,
        });
      }
    }
    return out;
  }

  let renderScrubber = () => {}; // a finished call's player marks what happened (below)

  function renderMarks() {
    renderScrubber();
    if (!window.CallsiteCharts || !chartsMounted) return;
    window.CallsiteCharts.marks([...finalMarks.values(), ...toneMarks.values(), ...periodMarks()]);
  }

  function renderTrend() {
    const rows = [...trend.values()].sort((a, b) => a[0] - b[0]).slice(-20);
    const latest = rows.length ? rows[rows.length - 1][2] : null;
    const el = document.getElementById("sentiment");
    el.replaceChildren(window.sentimentSparkline(rows.map((r) => r[1]), latest));
    el.dataset.latest = latest || "";
    document.getElementById("sentiment-latest").textContent = latest || "no sentiment yet";
  }

  // A DTMF tone, in the transcript at its place: the fact, who and when (digits masked
  // unless CALLSITE_DTMF_DIGITS=keep).
  function showTone(tone) {
    if (tone.seq) lastSeq = Math.max(lastSeq, tone.seq);
    if (captions.querySelector(`.dtmf[data-event="${tone.event_id}"]`)) return;
    const [el, meta] = lineShell("caption final dtmf", tone.participant, tone.offset_ticks);
    el.dataset.event = tone.event_id;
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = `pressed ${tone.tone}`;
    el.append(meta, text);
    placeFinal(el, el.dataset.offset);
    if (tone.offset_ticks != null) {
      toneMarks.set(tone.event_id, {
        kind: "dtmf", key: tone.participant ? tone.participant.raw_id : "unknown",
        start_s: tone.offset_ticks / 1e7, text: `pressed ${tone.tone}`,
      });
    }
  }

  function placeFinal(el, offset) {
    // Keep finals in spoken order even if they arrive out of order.
    const finals = captions.querySelectorAll(".caption.final");
    for (const other of finals) {
      if (other.dataset.offset !== "" && offset !== "" && Number(other.dataset.offset) > Number(offset)) {
        captions.insertBefore(el, other);
        return;
      }
    }
    const firstInterim = captions.querySelector(".caption.interim");
    captions.insertBefore(el, firstInterim);
  }

  function showFinal(caption) {
    if (caption.seq) lastSeq = Math.max(lastSeq, caption.seq);
    const key = speakerKey(caption);
    const interim = captions.querySelector(`.caption.interim[data-speaker="${CSS.escape(key)}"]`);
    if (interim) interim.remove();
    if (captions.querySelector(`.caption.final[data-utterance="${caption.utterance_id}"]`)) return;
    const el = buildCaption(caption);
    el.dataset.utterance = caption.utterance_id;
    el.dataset.speaker = key;
    if (seekable && el.dataset.offset !== "") { el.tabIndex = 0; el.title = "Play from here"; }
    placeFinal(el, el.dataset.offset);
    noteSentiment(caption);
  }

  function showInterim(caption) {
    const key = speakerKey(caption);
    const el = buildCaption(caption);
    el.dataset.speaker = key;
    const existing = captions.querySelector(`.caption.interim[data-speaker="${CSS.escape(key)}"]`);
    if (existing) existing.replaceWith(el);
    else captions.append(el);
  }

  // --- alerts ---------------------------------------------------------------------------

  function showAlert(alert) {
    if (alert.seq) lastSeq = Math.max(lastSeq, alert.seq);
    const existing = alertList.querySelector(`[data-alert="${alert.id}"]`);
    alertList.querySelector(".empty")?.remove();
    const li = document.createElement("li");
    li.dataset.alert = alert.id;
    li.dataset.kind = alert.kind;
    li.dataset.at = alert.at_ms;
    li.dataset.message = alert.message;
    const when = document.createElement("span");
    when.className = "time";
    when.textContent = msToClock(alert.at_ms);
    li.append(when, document.createTextNode(` ${alert.message}`));
    li.append(alertTriage(alert));
    if (existing) {
      existing.replaceWith(li); // a triage change, or the snapshot of a page that reconnected
    } else {
      // Newest first.
      const later = [...alertList.children].find((other) => Number(other.dataset.at) < alert.at_ms);
      alertList.insertBefore(li, later || null);
    }
    document.getElementById("alert-count").textContent = alertList.querySelectorAll("[data-alert]").length;
  }

  // An alert's triage: its state (who acknowledged or resolved it, when, the note) and the
  // buttons that move it on. Posts to /alerts/<id>/<step>/; the change comes back to every
  // page watching as alert.updated.
  function alertTriage(alert) {
    const box = document.createElement("div");
    box.className = "triage";
    box.dataset.state = alert.state || "open";
    const state = document.createElement("span");
    state.className = "badge alert-state";
    state.dataset.state = box.dataset.state;
    let text = box.dataset.state;
    if (alert.state === "acknowledged" && alert.acknowledged_by) text += ` by ${alert.acknowledged_by}`;
    if (alert.state === "resolved" && alert.resolved_by) text += ` by ${alert.resolved_by}`;
    const at = alert.state === "resolved" ? alert.resolved_at : alert.acknowledged_at;
    if (at && alert.state !== "open") text += ` at ${new Date(at).toLocaleTimeString()}`;
    state.textContent = text;
    box.append(state);
    if (alert.note) {
      const note = document.createElement("q");
      note.className = "note";
      note.textContent = alert.note;
      box.append(" ", note);
    }
    const steps = alert.state === "resolved" ? ["reopen"] : alert.state === "acknowledged" ? ["resolve", "reopen"] : ["acknowledge", "resolve"];
    const panel = alertList.closest("[data-triage-url]");
    if (!panel) return box;
    if (alert.state !== "resolved") {
      const note = document.createElement("input");
      note.type = "text";
      note.name = "note";
      note.maxLength = 500;
      note.placeholder = "Note (optional)";
      note.setAttribute("aria-label", "Note");
      box.append(" ", note);
    }
    for (const step of steps) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.step = step;
      button.textContent = step[0].toUpperCase() + step.slice(1);
      button.addEventListener("click", async () => {
        const params = new URLSearchParams({ note: box.querySelector("input[name=note]")?.value || "" });
        const url = panel.dataset.triageUrl.replace("0/STEP", `${alert.id}/${step}`);
        const token = panel.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
        const response = await fetch(url, {
          method: "POST",
          body: params,
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": token },
        }).catch((error) => ({ ok: false, json: async () => ({ error: String(error) }) }));
        const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
        const error = document.getElementById("triage-error");
        if (response.ok && answer.alert) showAlert(answer.alert);
        if (error) {
          error.textContent = response.ok ? "" : answer.error || "The alert could not be changed.";
          error.hidden = response.ok;
        }
      });
      box.append(" ", button);
    }
    return box;
  }

  // --- analytics ------------------------------------------------------------------------

  // Times are whole seconds that add up: talk and silence make the duration. Every share is
  // of the call's duration; the talk ratio (share of all talk) is the donut's.
  function renderFigures(a) {
    latestAnalytics = a;
    const d = a.duration_ms;
    const [talk, hold, silence] = window.secondsAddingUp([a.talk_ms, a.hold_ms || 0, a.silence_ms], d);
    const ofCall = (ms) => (d > 0 ? `${Math.round((ms / d) * 100)} % of the call` : "");
    const clock = (s) => window.formatDuration(s);
    const rows = [
      ["Duration", clock(talk + hold + silence)],
      ["Someone talking", `${clock(talk)} · ${ofCall(a.talk_ms)}`],
      ["Nobody talking", `${clock(silence)} · ${ofCall(a.silence_ms)}${a.current_silence_ms >= 3000 ? ` · now ${Math.round(a.current_silence_ms / 1000)} s` : ""}`],
      ["Two or more talking", `${msToClock(a.overlap_ms)} · ${ofCall(a.overlap_ms)}`],
      ["On hold", `${clock(hold)} · ${ofCall(a.hold_ms || 0)}`],
      ["Interruptions", String(a.interruptions)],
    ];
    for (const s of a.speakers) {
      const parts = [`${msToClock(s.talk_ms)} talking · ${ofCall(s.talk_ms)}`, `longest monologue ${msToClock(s.longest_monologue_ms)}`];
      if (s.wpm != null) parts.push(`${Math.round(s.wpm)} wpm`);
      if (s.interruptions) parts.push(`${s.interruptions} interruptions`);
      rows.push([s.label, parts.join(" · ")]);
    }
    const list = document.getElementById("figures");
    list.replaceChildren(
      ...rows.flatMap(([term, value]) => {
        const dt = document.createElement("dt");
        dt.textContent = term;
        const dd = document.createElement("dd");
        dd.textContent = value;
        return [dt, dd];
      }),
    );
    list.dataset.source = a.source;
    list.dataset.final = a.final ? "true" : "false";
  }

  const chartElements = {
    talk_time: document.getElementById("chart-talk-time"),
    talk_ratio: document.getElementById("chart-talk-ratio"),
    timeline: document.getElementById("chart-timeline"),
  };

  // The socket sends the full charts ("analytics") first, then live updates to apply.
  function showAnalytics(event) {
    renderFigures(event.analytics);
    if (!window.CallsiteCharts) return;
    if (event.type === "analytics") {
      window.CallsiteCharts.mount(chartElements, event.charts);
      chartsMounted = true;
    } else if (chartsMounted) {
      window.CallsiteCharts.update(event.charts);
    }
  }

  // --- the call -------------------------------------------------------------------------

  function renderCall() {
    if (!call) return;
    const title = window.callTitle(call);
    const heading = document.getElementById("call-title");
    if (heading.textContent !== title) {
      heading.textContent = title;
      document.title = `${title} · Callsite`;
    }
    const state = document.getElementById("call-state");
    state.textContent = window.callStateText(call);
    state.dataset.state = call.state;
    // The figures' duration once there are figures: the header and the figures agree.
    document.getElementById("call-duration").textContent = latestAnalytics
      ? window.formatDuration(window.secondsAddingUp([latestAnalytics.talk_ms, latestAnalytics.hold_ms || 0, latestAnalytics.silence_ms], latestAnalytics.duration_ms).reduce((x, y) => x + y, 0))
      : window.callDuration(call);
    document.getElementById("call-locale").textContent = call.locale || "";
    const options = call.transcription_options || {};
    const asked = [];
    if (options.sentiment) asked.push("sentiment");
    if (options.pii_redaction && options.pii_redaction.enable) asked.push(`PII redaction (${options.pii_redaction.redaction_type || "on"})`);
    if (options.summarization && options.summarization.enable_end_call_summary) asked.push("end-of-call summary");
    if (options.locales && options.locales.length) asked.push(`languages ${options.locales.join(", ")}`);
    if (options.speech_model_endpoint_id) asked.push("custom speech model");
    document.getElementById("call-options").textContent = asked.length ? `ACS transcription: ${asked.join(" · ")}` : "";
    const streams = [];
    if (call.media_state) streams.push(`media ${call.media_state}`);
    if (call.transcription_state) streams.push(`transcription ${call.transcription_state}`);
    document.getElementById("call-streams").textContent = streams.join(" · ");
    if (controls) controls.hidden = call.state === "ended";
    document.getElementById("problems").replaceChildren(
      ...call.problems.map((problem) => {
        const li = document.createElement("li");
        const code = problem.code == null ? "" : ` ${problem.code}/${problem.subcode ?? ""}`;
        li.textContent = `${problem.type}${code}: ${problem.message}`;
        return li;
      }),
    );
    // Redrawn only when something changed: the clock redraws the call every second.
    const list = document.getElementById("participants");
    // A hold's clock and who is speaking change the badges too.
    const holding = call.participants.some((p) => p.is_on_hold);
    const drawn = JSON.stringify([
      call.state,
      call.participants,
      [...actions.values()].filter((a) => !a.settled),
      [...speaking],
      latestAnalytics ? latestAnalytics.speakers.map((sp) => [sp.key, Math.floor(sp.current_monologue_ms / 1000)]) : [],
      holding ? Math.floor(Date.now() / 1000) : 0,
    ]);
    if (drawnParticipants !== drawn) {
      drawnParticipants = drawn;
      list.replaceChildren(...call.participants.map(participantItem));
    }
    followButton.textContent = call.state === "ended" ? "↓ To the end" : "↓ Back to live";
    const paused = Boolean(call.secure_pause_since);
    document.getElementById("secure-pause-notice").hidden = !paused;
    const pauseForm = document.getElementById("secure-pause");
    if (pauseForm) {
      pauseForm.hidden = call.state === "ended";
      pauseForm.elements.paused.value = paused ? "off" : "on";
      document.getElementById("secure-pause-button").textContent = paused ? "Resume after payment" : "Pause for payment";
    }
    const recording = document.getElementById("recording-state");
    if (recording) {
      recording.textContent = call.recording_state || "off";
      recording.dataset.state = call.recording_state;
    }
    renderAudit();
  }

  // --- supervisor actions -------------------------------------------------------------------

  function pendingFor(rawId) {
    return [...actions.values()].filter((a) => a.target === rawId && !a.settled);
  }

  function participantItem(p) {
    const li = document.createElement("li");
    li.dataset.role = p.role;
    li.dataset.rawId = p.raw_id;
    const now = speaking.get(p.raw_id) || false;
    li.dataset.speaking = now ? "true" : "false";
    const stats = latestAnalytics ? latestAnalytics.speakers.find((s) => s.key === p.raw_id) : null;
    const flags = [
      p.invitation && p.invitation !== "joined" ? p.invitation : "",
      p.in_call || p.invitation === "invited" ? "" : "left",
    ];
    const text = document.createElement("span");
    text.className = "who";
    text.textContent = [`${p.label} · ${p.role}`, ...flags.filter(Boolean)].join(" · ");
    window.appendBadges(text, window.participantBadges(p, now, stats ? stats.current_monologue_ms : 0));
    if (p.hold_ms) text.append(` · held ${msToClock(p.hold_ms)} in all`);
    if (p.mute_ms) text.append(` · muted ${msToClock(p.mute_ms)} in all`);
    li.append(text);
    for (const action of pendingFor(p.raw_id)) {
      const badge = document.createElement("span");
      badge.className = "pending";
      badge.dataset.action = action.action;
      badge.textContent = `${action.label}: ${action.status}…`;
      li.append(badge);
    }
    if (call.state !== "ended") li.append(...participantButtons(p));
    return li;
  }

  function button(label, action, participant, ask) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.action = action;
    b.addEventListener("click", () => {
      const params = { participant: participant.raw_id };
      if (ask) {
        const extra = ask(params);
        if (extra === null) return;
      }
      post(action, params);
    });
    return b;
  }

  function asking(question, field) {
    return (params) => {
      const answer = window.prompt(question);
      if (!answer) return null;
      params[field] = answer;
      return params;
    };
  }

  function confirming(question) {
    return (params) => {
      if (!window.confirm(question)) return null;
      params.confirm = "yes";
      return params;
    };
  }

  function participantButtons(p) {
    const buttons = [];
    if (kinds.has("participants")) {
      if (p.invitation === "invited") buttons.push(button("Cancel invitation", "cancel-add", p));
      if (p.in_call) {
        if (!p.is_muted) buttons.push(button("Mute", "mute", p));
        buttons.push(p.is_on_hold ? button("Unhold", "unhold", p) : button("Hold", "hold", p));
        buttons.push(button("Remove", "remove", p, confirming(`Remove ${p.label} from the call?`)));
        buttons.push(
          button("Transfer", "transfer", p, (params) => {
            const to = window.prompt(`Transfer ${p.label} to (number or ACS id)`);
            if (!to || !window.confirm(`Transfer ${p.label} to ${to}?`)) return null;
            params.address = to;
            params.confirm = "yes";
            return params;
          }),
        );
      }
    }
    if (kinds.has("control") && p.in_call) {
      buttons.push(button("DTMF", "send-dtmf", p, asking(`Keys to send to ${p.label} (0-9 * #)`, "tones")));
      buttons.push(button("Prompt", "play-prompt", p, asking(`Prompt only ${p.label} hears`, "text")));
    }
    return buttons;
  }

  // An action only moves forward (as on the server): its outcome callback can reach the page
  // over the socket before the answer to the request that started it does.
  const STATUS_RANK = { pending: 0, accepted: 1 };
  const rank = (status) => STATUS_RANK[status] ?? 2;

  function showAction(action) {
    const known = actions.get(action.id);
    if (known && rank(known.status) > rank(action.status)) return;
    actions.set(action.id, action);
  }

  function renderAudit() {
    const audit = document.getElementById("audit");
    if (!actions.size) return;
    const rows = [...actions.values()].sort((a, b) => b.id - a.id);
    audit.replaceChildren(
      ...rows.map((a) => {
        const li = document.createElement("li");
        li.dataset.action = a.action;
        li.dataset.status = a.status;
        const when = new Date(a.at).toLocaleTimeString();
        const target = a.target ? ` (${a.target})` : "";
        const outcome = a.outcome ? ` · ${a.outcome}` : "";
        li.textContent = `${when} · ${a.user || "someone"} · ${a.label}${target} · ${a.status}${outcome}`;
        return li;
      }),
    );
  }

  function csrfToken() {
    const input = (controls || document).querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function showError(message) {
    const error = document.getElementById("control-error");
    if (!error) return;
    error.textContent = message || "";
    error.hidden = !message;
  }

  async function post(action, params, url) {
    const body = new URLSearchParams(params);
    const target = url || controls.dataset.actionsUrl.replace("ACTION", action);
    showError("");
    try {
      const response = await fetch(target, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      });
      const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
      if (!response.ok) showError(answer.error || `HTTP ${response.status}`);
      else if (answer.action) showAction(answer.action);
    } catch (error) {
      showError(String(error));
    }
    renderCall();
  }

  // Pause for payment: posted through fetch too; the call's next update redraws the button.
  const pauseForm = document.getElementById("secure-pause");
  if (pauseForm) {
    pauseForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = document.getElementById("secure-pause-error");
      error.hidden = true;
      try {
        const response = await fetch(pauseForm.action, {
          method: "POST",
          body: new URLSearchParams({ paused: pauseForm.elements.paused.value }),
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
        });
        const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
        if (!response.ok) {
          error.textContent = answer.error || `HTTP ${response.status}`;
          error.hidden = false;
        } else if (call) {
          call.secure_pause_since = answer.since;
          renderCall();
        }
      } catch (failure) {
        error.textContent = String(failure);
        error.hidden = false;
      }
    });
  }

  // The page's forms post through fetch, so the page (and its live socket) stays; without
  // JavaScript they post and come back with a message.
  if (controls) {
    controls.addEventListener("submit", (event) => {
      const form = event.target.closest("form.control");
      if (!form) return;
      event.preventDefault();
      const params = Object.fromEntries(new FormData(form));
      delete params.csrfmiddlewaretoken;
      if (form.dataset.confirm) {
        if (!window.confirm(form.dataset.confirm)) return;
        params.confirm = "yes";
      }
      post("", params, form.action);
    });
  }

  // Screen readers hear live finals and new alerts (not interims, not the snapshot): each is
  // written to a hidden live region, as the visible transcript itself is not live.
  const finalsHeard = document.getElementById("captions-heard");
  const alertsHeard = document.getElementById("alerts-heard");
  function announce(region, text) {
    if (region) region.textContent = text;
  }

  function socketPath() {
    const base = `/ws/dashboard/calls/${callId}/`;
    return lastSeq ? `${base}?after=${lastSeq}` : base;
  }

  window.connectLive(socketPath, function (event) {
    const follow = following && atBottom();
    if (event.type === "snapshot") {
      call = event.call;
      lowConfidence = event.low_confidence ?? lowConfidence;
      captions.querySelectorAll(".caption.interim").forEach((el) => el.remove());
      for (const caption of event.captions) showFinal(caption);
      for (const alert of event.alerts) showAlert(alert);
      for (const action of event.actions || []) showAction(action);
      for (const tone of event.tones || []) showTone(tone);
      lastSeq = Math.max(lastSeq, event.last_seq || 0);
    } else if (event.type === "call.updated") {
      call = event.call;
    } else if (event.type === "call.participant") {
      window.mergeParticipant(call, event.participant);
    } else if (event.type === "caption.final") {
      showFinal(event.caption);
      announce(finalsHeard, `${event.caption.participant?.label || "Someone"}: ${event.caption.text}`);
    } else if (event.type === "caption.interim") {
      showInterim(event.caption);
    } else if (event.type === "alert.fired" || event.type === "alert.updated") {
      showAlert(event.alert);
      announce(alertsHeard, `Alert: ${event.alert.message}`);
    } else if (event.type === "call.action") {
      showAction(event.action);
    } else if (event.type === "dtmf.tone") {
      showTone(event.tone);
    } else if (event.type === "speaking.changed") {
      speaking.set(event.speaking.key, event.speaking.speaking);
    } else if (event.type === "analytics" || event.type === "analytics.updated") {
      showAnalytics(event);
      for (const s of event.analytics.speakers) if (!event.analytics.final) speaking.set(s.key, s.speaking);
    }
    renderTrend();
    renderMarks();
    root.dataset.lastSeq = lastSeq;
    empty.hidden = captions.querySelector(".caption") !== null;
    renderCall();
    if (follow) captions.scrollTop = captions.scrollHeight;
  });
  window.setInterval(renderCall, 1000);

  // Listening in (streaming.listen_call): the call's audio over its own socket, a tenth of a
  // second per message, each participant's scheduled back to back so it plays without gaps,
  // a little behind (LISTEN_AHEAD) to ride out jitter.
  const listenBox = document.getElementById("listen");
  if (listenBox) {
    const LISTEN_AHEAD = 0.15;
    const button = document.getElementById("listen-button");
    const trackSelect = document.getElementById("listen-track");
    const status = document.getElementById("listen-status");
    let socket = null;
    let context = null;
    const next = new Map(); // track -> when its next chunk starts (AudioContext time)
    window.listenStats = { messages: 0, lagMs: null };
    function stop(why) {
      if (socket) socket.close();
      socket = null;
      if (context) context.close();
      context = null;
      next.clear();
      button.textContent = "Listen live";
      button.setAttribute("aria-pressed", "false");
      status.textContent = why || "";
    }
    function play(header, pcm) {
      const samples = new Int16Array(pcm);
      const floats = Float32Array.from(samples, (v) => v / 32768);
      const buffer = context.createBuffer(1, floats.length, header.rate);
      buffer.copyToChannel(floats, 0);
      const source = context.createBufferSource();
      source.buffer = buffer;
      source.connect(context.destination);
      const at = Math.max(context.currentTime + LISTEN_AHEAD, next.get(header.track) || 0);
      source.start(at);
      next.set(header.track, at + buffer.duration);
    }
    function start() {
      context = new AudioContext();
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}${listenBox.dataset.path}`);
      socket.binaryType = "arraybuffer";
      button.textContent = "Stop listening";
      button.setAttribute("aria-pressed", "true");
      status.textContent = "connecting…";
      socket.addEventListener("message", (event) => {
        if (typeof event.data === "string") { status.textContent = "listening"; return; }
        const length = new DataView(event.data).getUint16(0, true);
        const header = JSON.parse(new TextDecoder().decode(new Uint8Array(event.data, 2, length)));
        const lag = Date.now() - header.sent_at * 1000;
        window.listenStats.messages += 1;
        window.listenStats.lagMs = lag;
        status.textContent = `listening · ${(Math.max(lag, 0) / 1000 + LISTEN_AHEAD).toFixed(1)} s behind`;
        if (trackSelect.value && trackSelect.value !== header.track) return;
        if (context) play(header, event.data.slice(2 + length));
      });
      socket.addEventListener("close", () => { if (socket) stop("the call's audio stopped"); });
    }
    button.addEventListener("click", () => (socket ? stop("") : start()));
    window.setInterval(() => {
      if (!call) return;
      const wanted = call.participants.map((p) => [p.raw_id, p.label]);
      const have = [...trackSelect.options].slice(1).map((o) => [o.value, o.textContent]);
      if (JSON.stringify(wanted) === JSON.stringify(have)) return;
      const chosen = trackSelect.value;
      trackSelect.replaceChildren(trackSelect.options[0], ...wanted.map(([value, label]) => {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = label;
        return option;
      }));
      trackSelect.value = chosen;
      if (call.state === "ended" && socket) stop("the call has ended");
    }, 1000);
  }

  // A finished call's recording: a caption (click, or Enter on a focused one) plays the call
  // from its start; while it plays, the caption being spoken is highlighted.
  const player = document.getElementById("player");
  if (player) {
    const trackSelect = document.getElementById("player-track");
    const download = document.getElementById("player-download");
    captions.classList.add("seekable");
    function playFrom(line) {
      if (!line || line.dataset.offset === "") return;
      player.currentTime = Number(line.dataset.offset) / 1e7;
      player.play().catch(() => {}); // a browser may refuse to play unasked: the seek stands
    }
    captions.addEventListener("click", (event) => {
      if (window.getSelection && String(window.getSelection()).length) return; // selecting text
      playFrom(event.target.closest(".caption.final"));
    });
    captions.addEventListener("keydown", (event) => {
      if (event.key === "Enter") playFrom(event.target.closest(".caption.final"));
    });
    let current = null;
    player.addEventListener("timeupdate", () => {
      const ticks = player.currentTime * 1e7;
      let found = null;
      for (const line of captions.querySelectorAll(".caption.final")) {
        if (line.dataset.offset === "" || Number(line.dataset.offset) > ticks) continue;
        found = line;
      }
      if (found === current) return;
      if (current) { current.classList.remove("playing"); current.removeAttribute("aria-current"); }
      current = found;
      if (current) { current.classList.add("playing"); current.setAttribute("aria-current", "true"); }
    });
    // Alerts, holds, mutes, pauses for payment and DTMF tones under the player, at their
    // places: each a button that plays the call from there.
    const strip = document.getElementById("player-marks");
    let drawnMarks = "";
    renderScrubber = function () {
      const duration = player.duration;
      if (!strip || !Number.isFinite(duration) || duration <= 0) return;
      const alerts = [...alertList.querySelectorAll("li[data-at]")].map((li) => ({
        kind: "alert", start_s: Number(li.dataset.at) / 1000,
        text: `Alert: ${li.dataset.message || li.dataset.kind}`,
      }));
      const marks = [...alerts, ...toneMarks.values(), ...periodMarks()]
        .filter((m) => m.start_s >= 0 && m.start_s <= duration)
        .sort((a, b) => a.start_s - b.start_s);
      const key = JSON.stringify([duration, marks]);
      if (key === drawnMarks) return;
      drawnMarks = key;
      strip.replaceChildren(...marks.map((m) => {
        const mark = document.createElement("button");
        mark.type = "button";
        mark.className = `mark ${m.kind}`;
        mark.dataset.kind = m.kind;
        mark.style.left = `${(100 * m.start_s) / duration}%`;
        if (m.end_s != null && m.end_s > m.start_s) {
          mark.style.width = `${(100 * (Math.min(m.end_s, duration) - m.start_s)) / duration}%`;
        }
        const label = `${m.text} at ${window.formatDuration(m.start_s)}`;
        mark.title = label;
        mark.setAttribute("aria-label", `${label}: play from here`);
        mark.addEventListener("click", () => {
          player.currentTime = m.start_s;
          player.play().catch(() => {});
        });
        return mark;
      }));
    };
    player.addEventListener("loadedmetadata", () => renderScrubber());
    if (trackSelect) {
      trackSelect.addEventListener("change", () => {
        const at = player.currentTime;
        const playing = !player.paused;
        player.src = trackSelect.value;
        download.href = `${trackSelect.value}?download=1`;
        player.addEventListener("loadedmetadata", () => {
          player.currentTime = at;
          if (playing) player.play().catch(() => {});
        }, { once: true });
      });
    }
  }
})();
