// Room display (màn hình điểm cầu): renders /ws/rooms/{id}'s snapshot, applies live messages,
// reconnects by itself with backoff and resumes with ?since=<last event id> (SPEC "Live channel").
//
// State: the occurrences this room takes part in, keyed by occurrence id, from the snapshot's
// "current"/"next" items and from "join.instructions" messages (which carry everything a room
// shows); endpoint statuses by endpoint id. When an occurrence leaves (cancelled, moved away,
// ended) the page asks for a fresh snapshot, because a room's snapshot names only the next one.
// Times are shown in the server's zone (config.timezone), counted on the server's clock (the
// offset learnt from the snapshot's "now" and every message's "at"), whatever the TV's clock says.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("display-config").textContent);
  const T = config.text;
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 15000;
  const INVALID_RETRY_MS = 60000;
  const CLOSE_INVALID = new Set([4401, 4403, 4404]);

  const state = {
    lastId: null,          // id of the last message applied (a snapshot's id is the latest event's)
    occurrences: new Map(), // occurrence id -> {meeting_id, title, start, end, check_at, chair_room_id, join, readiness}
    endpoints: new Map(),   // endpoint id -> {name, status}
    chairNames: new Map(),  // room id -> name
    tentative: new Set(),   // occurrence ids displaced by a higher priority (snapshot "tentative", meeting.updated "displaced")
    chairOf: new Map(),     // occurrence id / "m<meeting id>" -> chair room id, from meeting.* messages
    offsetMs: Date.parse(config.now) - Date.now(),
  };
  let socket = null;
  let backoffMs = BACKOFF_MIN_MS;
  let reconnectTimer = null;
  let resyncTimer = null;
  let wantSnapshot = false;
  let lastHeard = Date.now();
  let bannerTimer = null;

  const $ = (id) => document.getElementById(id);
  const now = () => Date.now() + state.offsetMs;

  // ------------------------------------------------------------ formatting (server's zone)

  const partsFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: config.timezone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", weekday: "short", hourCycle: "h23",
  });
  const WEEKDAY_INDEX = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

  function parts(ms) {
    const out = {};
    for (const p of partsFormat.formatToParts(new Date(ms))) out[p.type] = p.value;
    return out;
  }
  const hhmm = (ms) => { const p = parts(ms); return `${p.hour}:${p.minute}`; };
  const day = (ms) => { const p = parts(ms); return `${config.weekdays[WEEKDAY_INDEX[p.weekday]]}, ${p.day}/${p.month}/${p.year}`; };
  const sameDay = (a, b) => { const x = parts(a), y = parts(b); return x.year === y.year && x.month === y.month && x.day === y.day; };

  function span(start, end) {
    let text = `${hhmm(start)} – ${hhmm(end)} · ${day(start)}`;
    if (!sameDay(start, end)) text = `${hhmm(start)} ${day(start)} – ${hhmm(end)} ${day(end)}`;
    return text;
  }

  function countdown(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(total / 86400);
    const pad = (n) => String(n).padStart(2, "0");
    const clock = `${pad(Math.floor((total % 86400) / 3600))}:${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}`;
    return d > 0 ? `${d} ${T.days} ${clock}` : clock;
  }

  // ------------------------------------------------------------ state from messages

  function fromSnapshotItem(item) {
    const join = (item.join_instructions || []).find((j) => j.room_id === config.room_id) || null;
    const readiness = (item.readiness || []).find((r) => r.room_id === config.room_id) || null;
    return {
      meeting_id: item.meeting_id, occurrence_id: item.occurrence_id, title: item.title,
      start: Date.parse(item.start), end: Date.parse(item.end), check_at: Date.parse(item.check_at),
      chair_room_id: item.chair_room_id, join,
      readiness: readiness ? { state: readiness.state, note: readiness.note } : { state: "not_checked", note: "" },
    };
  }

  function applySnapshot(message) {
    const data = message.data;
    state.occurrences.clear();
    state.tentative.clear();
    for (const item of [...(data.current || []), ...(data.next || [])]) {
      state.occurrences.set(item.occurrence_id, fromSnapshotItem(item));
      if (item.tentative) state.tentative.add(item.occurrence_id);
    }
    state.endpoints.clear();
    for (const e of data.endpoints || []) {
      if (e.room_id === config.room_id) state.endpoints.set(e.endpoint_id, { name: e.name, status: e.status });
    }
    if (data.now) state.offsetMs = Date.parse(data.now) - Date.now();
  }

  function removeOccurrences(ids) {
    let removed = false;
    for (const id of ids) removed = state.occurrences.delete(id) || removed;
    if (removed) scheduleResync();
  }

  function apply(message) {
    const data = message.data || {};
    if (message.type.startsWith("meeting.") && data.chair_room_id) {
      // join.instructions names only whether this room chairs; the meeting.* message before it names the chair.
      if (data.occurrence_id) state.chairOf.set(data.occurrence_id, data.chair_room_id);
      state.chairOf.set(`m${data.meeting_id}`, data.chair_room_id);
    }
    switch (message.type) {
      case "snapshot":
        applySnapshot(message);
        break;
      case "join.instructions": {
        if (data.room_id !== config.room_id) break;
        const known = state.occurrences.get(data.occurrence_id);
        state.occurrences.set(data.occurrence_id, {
          meeting_id: data.meeting_id, occurrence_id: data.occurrence_id, title: data.title,
          start: Date.parse(data.start), end: Date.parse(data.end), check_at: Date.parse(data.check_at),
          chair_room_id: data.is_chair ? config.room_id
            : state.chairOf.get(data.occurrence_id) ?? state.chairOf.get(`m${data.meeting_id}`)
              ?? (known ? known.chair_room_id : null),
          join: data,
          readiness: known ? known.readiness : { state: "not_checked", note: "" },
        });
        break;
      }
      case "meeting.updated":
        if (data.scope === "occurrence" && data.occurrence_id) {
          if (data.displaced) {
            state.tentative.add(data.occurrence_id);
            if ((data.room_ids || []).includes(config.room_id)) banner(T.displaced);
          } else {
            state.tentative.delete(data.occurrence_id);
          }
        }
        // join.instructions for the changed occurrence follows in the same transaction; an
        // occurrence this room no longer takes part in leaves, and a fresh snapshot names the next.
        if (!(data.room_ids || []).includes(config.room_id)) {
          removeOccurrences([...state.occurrences.values()].filter((o) => o.meeting_id === data.meeting_id)
            .map((o) => o.occurrence_id));
        } else {
          removeOccurrences((data.occurrence_ids || []).filter((id) => id !== data.occurrence_id));
        }
        break;
      case "meeting.cancelled": {
        const ids = data.scope === "occurrence" ? (data.occurrence_ids || [])
          : [...state.occurrences.values()].filter((o) => o.meeting_id === data.meeting_id).map((o) => o.occurrence_id);
        if (ids.some((id) => state.occurrences.has(id))) banner(T.cancelled);
        removeOccurrences(ids);
        break;
      }
      case "meeting.ended":
        removeOccurrences([data.occurrence_id]);
        break;
      case "meeting.reminder":
        if (data.kind === "technical_check") banner(T.reminder_check);
        else if (data.kind === "starting_soon") banner(T.reminder_soon);
        break;
      case "readiness.changed": {
        const occ = state.occurrences.get(data.occurrence_id);
        if (occ && data.room_id === config.room_id) occ.readiness = { state: data.state, note: data.note || "" };
        break;
      }
      case "endpoint.status": {
        if (data.room_id !== config.room_id) break;
        const known = state.endpoints.get(data.endpoint_id);
        state.endpoints.set(data.endpoint_id, { name: known ? known.name : `#${data.endpoint_id}`, status: data.status });
        break;
      }
      default:
        break;
    }
  }

  // ------------------------------------------------------------ rendering

  function ordered() {
    const list = [...state.occurrences.values()].sort((a, b) => a.start - b.start || a.occurrence_id - b.occurrence_id);
    // A displaced (tentative) occurrence gives way here too: it comes after every occurrence that
    // starts before it ends (the meeting that took its place first).
    const out = list.filter((o) => !state.tentative.has(o.occurrence_id));
    for (const o of list.filter((x) => state.tentative.has(x.occurrence_id))) {
      let i = 0;
      while (i < out.length && out[i].start < o.end) i += 1;
      out.splice(i, 0, o);
    }
    return out;
  }

  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  function chairText(occ) {
    // "Điểm cầu này chủ trì" alone: "Điểm cầu chủ trì: Điểm cầu này chủ trì" said it twice (issue 13).
    if (!occ.join && occ.chair_room_id === config.room_id) return T.this_chair;
    if (occ.join && occ.join.is_chair) return T.this_chair;
    if (!Number.isInteger(occ.chair_room_id)) return "";
    const name = state.chairNames.get(occ.chair_room_id);
    if (name === undefined) fetchChairNames();
    return name ? `${T.chair}: ${name}` : "";
  }

  function renderJoin(occ) {
    const box = $("join");
    const held = occ && occ.join && !state.tentative.has(occ.occurrence_id);  // a displaced one holds no bridge
    const key = held ? JSON.stringify([occ.join.occurrence_id, occ.join.conference_number, occ.join.pin,
      occ.join.endpoints, occ.join.dial_mode]) : occ ? `none:${occ.occurrence_id}` : "";
    if (box.dataset.key === key && box.childElementCount) return;
    box.dataset.key = key;
    box.replaceChildren();
    const row = (label, value, cls) => {
      const div = document.createElement("div");
      div.className = `d-join-row ${cls || ""}`;
      const l = document.createElement("div"); l.className = "d-join-label"; l.textContent = label;
      const v = document.createElement("div"); v.className = "d-join-value"; v.textContent = value;
      div.append(l, v);
      box.append(div);
    };
    if (!held) {
      const p = document.createElement("p"); p.className = "d-muted"; p.textContent = occ ? T.no_join : "–";
      box.append(p);
      return;
    }
    const j = occ.join;
    if (j.dial_mode === "dial_out") {
      const p = document.createElement("p"); p.className = "d-join-note"; p.textContent = T.dial_out;
      box.append(p);
    } else {
      const dials = [...new Set(j.endpoints.map((e) => e.dial_string).filter(Boolean))];
      if (!dials.length && j.sip_uri) dials.push(j.sip_uri);
      for (const d of dials) row(T.dial, d, "d-join-dial");
    }
    if (j.conference_number !== null && j.conference_number !== undefined) {
      row(T.conference_number, String(j.conference_number), "d-join-number");
    }
    if (j.dial_mode !== "dial_out") row(T.pin, j.pin || T.no_pin, "d-join-pin");
  }

  function renderEndpoints() {
    const list = $("endpoints");
    const items = [...state.endpoints.entries()].sort((a, b) => a[0] - b[0]);
    const key = JSON.stringify(items);
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.replaceChildren();
    if (!items.length) {
      const li = document.createElement("li"); li.className = "d-muted"; li.textContent = T.no_endpoints;
      list.append(li);
    }
    for (const [id, e] of items) {
      const li = document.createElement("li");
      li.className = "d-endpoint";
      li.dataset.status = e.status;
      li.dataset.endpointId = String(id);
      const name = document.createElement("span"); name.className = "d-ep-name"; name.textContent = e.name;
      const status = document.createElement("span"); status.className = "d-ep-status";
      status.textContent = T[e.status] || T.unknown;
      li.append(name, status);
      list.append(li);
    }
  }

  function titleOf(occ) {
    return state.tentative.has(occ.occurrence_id) ? `${occ.title} · ${T.tentative}` : occ.title;
  }

  function render() {
    const t = now();
    const p = parts(t);
    setText("clock", `${p.hour}:${p.minute}:${p.second}`);
    setText("today", day(t));

    const list = ordered().filter((o) => o.end > t);
    const primary = list[0] || null;
    const next = list[1] || null;
    const section = $("primary");
    if (!primary) {
      section.dataset.phase = "none";
      setText("primary-label", T.current);
      setText("primary-title", T.none);
      setText("primary-when", T.none_hint);
      setText("primary-chair", "");
      $("countdowns").hidden = true;
    } else {
      const phase = t >= primary.start ? "running" : t >= primary.check_at ? "checking" : "upcoming";
      section.dataset.phase = phase;
      section.dataset.occurrenceId = String(primary.occurrence_id);
      setText("primary-label", phase === "running" ? `${T.current} · ${T.in_progress}`
        : phase === "checking" ? `${T.current} · ${T.checking}` : T.upcoming);
      setText("primary-title", titleOf(primary));
      setText("primary-when", span(primary.start, primary.end));
      setText("primary-chair", chairText(primary));
      $("countdowns").hidden = false;
      const checkPassed = t >= primary.check_at;
      $("count-check").dataset.passed = String(checkPassed);
      setText("count-check-label", checkPassed ? T.check : T.check_in);
      setText("count-check-value", checkPassed ? (phase === "running" ? "✓" : T.in_progress) : countdown(primary.check_at - t));
      $("count-check-value").classList.toggle("d-count-text", checkPassed && phase !== "running");
      setText("count-check-at", `${T.check}: ${hhmm(primary.check_at)}`);
      $("count-start").dataset.passed = String(phase === "running");
      setText("count-start-label", phase === "running" ? T.end_in : T.start_in);
      setText("count-start-value", countdown((phase === "running" ? primary.end : primary.start) - t));
      setText("count-start-at", phase === "running" ? `${T.started} ${hhmm(primary.start)}` : hhmm(primary.start));
    }
    renderJoin(primary);
    const r = primary ? primary.readiness : null;
    const badge = $("readiness");
    badge.dataset.state = r ? r.state : "none";
    setText("readiness", r ? (T[r.state] || r.state) : "–");
    setText("readiness-note", r && r.note ? r.note : "");
    renderEndpoints();
    setText("next-title", next ? titleOf(next) : "–");
    setText("next-when", next ? span(next.start, next.end) : "");
  }

  function tick() {
    // An occurrence that has ended leaves; the snapshot then names the one after it.
    const t = now();
    const ended = [...state.occurrences.values()].filter((o) => o.end <= t).map((o) => o.occurrence_id);
    if (ended.length) removeOccurrences(ended);
    render();
    if (socket && socket.readyState === WebSocket.OPEN && Date.now() - lastHeard > (3 * config.ping_seconds + 10) * 1000) {
      socket.close(4000, "silent server");
    }
  }

  function banner(text) {
    const el = $("banner");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(() => { el.hidden = true; }, 5 * 60 * 1000);
  }

  let chairFetch = null;
  function fetchChairNames() {
    const missing = [...new Set([...state.occurrences.values()].map((o) => o.chair_room_id))]
      .filter((id) => Number.isInteger(id) && id !== config.room_id && !state.chairNames.has(id));
    if (!missing.length || chairFetch) return;
    const url = `/display/rooms/${config.room_id}/chair-rooms?ids=${missing.join(",")}`;
    chairFetch = fetch(url, { cache: "no-store", referrerPolicy: "no-referrer",
                              headers: { Authorization: `Bearer ${config.token}` } })
      .then((r) => (r.ok ? r.json() : {}))
      .then((names) => {
        for (const id of missing) state.chairNames.set(id, names[String(id)] || "");
        render();
      })
      .catch(() => {})
      .finally(() => { chairFetch = null; });
  }

  // ------------------------------------------------------------ connection

  function setConnection(kind, text) {
    document.body.dataset.state = kind;
    setText("connection-text", text);
  }

  function scheduleResync() {
    wantSnapshot = true;
    clearTimeout(resyncTimer);
    resyncTimer = setTimeout(() => { if (socket) socket.close(4000, "resync"); }, 300);
  }

  function connect() {
    reconnectTimer = null;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // The token goes in the first message, never in the URL (kept in histories and access logs).
    let url = `${scheme}://${location.host}/ws/rooms/${config.room_id}?auth=message`;
    if (state.lastId !== null && !wantSnapshot) url += `&since=${state.lastId}`;
    const ws = new WebSocket(url);
    socket = ws;
    ws.onopen = () => {
      lastHeard = Date.now();
      ws.send(JSON.stringify({ type: "auth", token: config.token }));
    };
    ws.onmessage = (event) => {
      lastHeard = Date.now();
      let message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.at) state.offsetMs = Date.parse(message.at) - Date.now();
      if (message.type === "ping") { ws.send(JSON.stringify({ type: "pong" })); return; }
      if (message.type === "pong") return;
      if (message.type === "snapshot") {
        wantSnapshot = false;
        backoffMs = BACKOFF_MIN_MS;
        setConnection("live", T.live);
      } else if (typeof message.id === "number" && state.lastId !== null && message.id <= state.lastId) {
        return; // already applied (a replay overlapping what came live)
      }
      apply(message);
      if (typeof message.id === "number") state.lastId = message.id;
      if (state.lastId !== null && message.type !== "snapshot") setConnection("live", T.live);
      render();
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      if (event.code === 4000 && wantSnapshot) { connect(); return; }
      let delay;
      if (CLOSE_INVALID.has(event.code)) {
        setConnection("invalid", T.invalid);
        delay = INVALID_RETRY_MS;
      } else {
        setConnection("reconnecting", T.reconnecting);
        delay = backoffMs / 2 + Math.random() * backoffMs / 2; // jitter: thousands of TVs after a restart
        backoffMs = Math.min(BACKOFF_MAX_MS, backoffMs * 2);
      }
      reconnectTimer = setTimeout(connect, delay);
    };
    // A resumed connection is live as soon as it opens; the first replayed or live message confirms it.
    ws.addEventListener("open", () => {
      if (state.lastId !== null && !wantSnapshot) {
        backoffMs = BACKOFF_MIN_MS;
        setConnection("live", T.live);
      }
    });
  }

  window.confsvcDisplay = { state, reconnect: () => socket && socket.close(4000, "manual") };
  render();
  setInterval(tick, 1000);
  connect();
})();
