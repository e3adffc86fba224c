// One call's page: participants, then captions. Finals are keyed by utterance id, so a caption
// seen twice (snapshot and delta) is drawn once; each speaker has at most one interim line,
// replaced in place until their final arrives.
(function () {
  "use strict";
  const root = document.getElementById("call");
  const callId = root.dataset.callId;
  const captions = document.getElementById("captions");
  const empty = document.getElementById("captions-empty");
  let call = null;

  function speakerKey(caption) {
    return caption.participant ? caption.participant.raw_id : "unknown";
  }

  function ticksToClock(ticks) {
    return ticks == null ? "" : window.formatDuration(ticks / 1e7);
  }

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  }

  function buildCaption(caption) {
    const el = document.createElement("div");
    el.className = `caption ${caption.final ? "final" : "interim"}`;
    el.dataset.offset = caption.offset_ticks == null ? "" : caption.offset_ticks;
    el.dataset.role = caption.participant ? caption.participant.role : "unknown";
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "speaker";
    who.textContent = caption.participant ? caption.participant.label : "Unknown speaker";
    const when = document.createElement("span");
    when.className = "time";
    when.textContent = ticksToClock(caption.offset_ticks);
    meta.append(who, when);
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = caption.text;
    el.append(meta, text);
    return el;
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
    const key = speakerKey(caption);
    const interim = captions.querySelector(`.caption.interim[data-speaker="${CSS.escape(key)}"]`);
    if (interim) interim.remove();
    if (captions.querySelector(`.caption.final[data-utterance="${caption.utterance_id}"]`)) return;
    const el = buildCaption(caption);
    el.dataset.utterance = caption.utterance_id;
    el.dataset.speaker = key;
    placeFinal(el, el.dataset.offset);
  }

  function showInterim(caption) {
    const key = speakerKey(caption);
    const el = buildCaption(caption);
    el.dataset.speaker = key;
    const existing = captions.querySelector(`.caption.interim[data-speaker="${CSS.escape(key)}"]`);
    if (existing) existing.replaceWith(el);
    else captions.append(el);
  }

  function renderCall() {
    if (!call) return;
    const state = document.getElementById("call-state");
    state.textContent = call.state;
    state.dataset.state = call.state;
    document.getElementById("call-duration").textContent = window.callDuration(call);
    document.getElementById("call-locale").textContent = call.locale || "";
    const streams = [];
    if (call.media_state) streams.push(`media ${call.media_state}`);
    if (call.transcription_state) streams.push(`transcription ${call.transcription_state}`);
    document.getElementById("call-streams").textContent = streams.join(" · ");
    const actions = document.getElementById("call-actions");
    if (actions) actions.hidden = call.state === "ended";
    document.getElementById("problems").replaceChildren(
      ...call.problems.map((problem) => {
        const li = document.createElement("li");
        const code = problem.code == null ? "" : ` ${problem.code}/${problem.subcode ?? ""}`;
        li.textContent = `${problem.type}${code}: ${problem.message}`;
        return li;
      }),
    );
    const list = document.getElementById("participants");
    list.replaceChildren(
      ...call.participants.map((p) => {
        const li = document.createElement("li");
        li.dataset.role = p.role;
        const flags = [p.is_muted ? "muted" : "", p.is_on_hold ? "on hold" : "", p.in_call ? "" : "left"];
        li.textContent = [`${p.label} · ${p.role}`, ...flags.filter(Boolean)].join(" · ");
        return li;
      }),
    );
  }

  window.connectLive(`/ws/dashboard/calls/${callId}/`, function (event) {
    const follow = nearBottom();
    if (event.type === "snapshot") {
      call = event.call;
      captions.querySelectorAll(".caption.interim").forEach((el) => el.remove());
      for (const caption of event.captions) showFinal(caption);
    } else if (event.type === "call.updated") {
      call = event.call;
    } else if (event.type === "caption.final") {
      showFinal(event.caption);
    } else if (event.type === "caption.interim") {
      showInterim(event.caption);
    }
    empty.hidden = captions.querySelector(".caption") !== null;
    renderCall();
    if (follow) window.scrollTo(0, document.body.scrollHeight);
  });
  window.setInterval(renderCall, 1000);
})();
