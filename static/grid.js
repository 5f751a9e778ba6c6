// The planner (/planner): rooms × time from GET /api/v1/availability/grid, free slots from
// GET /api/v1/availability. Times arrive as local "YYYY-MM-DDTHH:MM" strings (*_local fields),
// so no time-zone arithmetic happens here. Words come from the page's data-w-* attributes.
(function () {
  "use strict";
  var root = document.getElementById("planner-grid");
  if (!root) return;
  var HOUR_FROM = 6, HOUR_TO = 20, SNAP = 15;
  var first = root.dataset.first, days = parseInt(root.dataset.days, 10);
  var unit = root.dataset.unit, group = root.dataset.group, duration = parseInt(root.dataset.duration, 10);
  var canBook = root.dataset.canBook === "yes";
  var w = function (key) { return root.getAttribute("data-w-" + key) || key; };
  var weekdays = JSON.parse(w("weekdays"));
  var ticked = [];

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function addDays(iso, n) {
    var d = new Date(iso + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }
  function dayIndex(iso) {
    return Math.round((Date.parse(iso + "T00:00:00Z") - Date.parse(first + "T00:00:00Z")) / 86400000);
  }
  var span = (HOUR_TO - HOUR_FROM) * 60;
  // Fraction of the track for a local "YYYY-MM-DDTHH:MM", clipped to the shown hours of its day.
  function pos(local) {
    var i = dayIndex(local.slice(0, 10));
    var minutes = parseInt(local.slice(11, 13), 10) * 60 + parseInt(local.slice(14, 16), 10) - HOUR_FROM * 60;
    if (i < 0) return 0;
    if (i >= days) return 1;
    return (i + Math.min(Math.max(minutes, 0), span) / span) / days;
  }
  function hhmm(local) { return local.slice(11, 16); }
  function place(node, from, to) {
    var a = pos(from), b = pos(to);
    node.style.left = (a * 100) + "%";
    node.style.width = Math.max((b - a) * 100, 0.3) + "%";
    return b > a;
  }
  function bookingLink(dateIso, startMinutes, roomIds) {
    var end = Math.min(startMinutes + duration, 23 * 60 + 45);
    var fmt = function (m) { return String(Math.floor(m / 60)).padStart(2, "0") + ":" + String(m % 60).padStart(2, "0"); };
    var params = new URLSearchParams({date: dateIso, start_time: fmt(startMinutes), end_time: fmt(end)});
    if (roomIds.length) params.set("chair_room_id", roomIds[0]);
    roomIds.slice(1).forEach(function (id) { params.append("participant_room_ids", id); });
    return "/meetings/new?" + params.toString();
  }

  function axis() {
    var row = el("div", "pl-row pl-axis");
    row.appendChild(el("div", "pl-name", ""));
    var track = el("div", "pl-track");
    for (var d = 0; d < days; d++) {
      var dateIso = addDays(first, d);
      if (days > 1) {
        var label = el("span", "pl-day", weekdays[d] + " " + dateIso.slice(8, 10) + "/" + dateIso.slice(5, 7));
        label.style.left = (d / days * 100) + "%";
        label.style.width = (100 / days) + "%";
        track.appendChild(label);
      } else {
        for (var h = HOUR_FROM; h < HOUR_TO; h += 2) {
          var tick = el("span", "pl-tick", String(h).padStart(2, "0") + ":00");
          tick.style.left = ((h - HOUR_FROM) * 60 / span * 100) + "%";
          track.appendChild(tick);
        }
      }
    }
    row.appendChild(track);
    return row;
  }

  function bridgeRow(bridge) {
    var row = el("div", "pl-row pl-bridge");
    var name = el("div", "pl-name");
    name.appendChild(el("strong", "", bridge.name));
    name.appendChild(el("small", "muted", " " + w("peak") + " " + bridge.peak + " " + w("of") + " " + bridge.port_capacity));
    row.appendChild(name);
    var track = el("div", "pl-track");
    track.setAttribute("role", "img");
    track.setAttribute("aria-label", w("ports") + " " + bridge.name + ": " + w("peak") + " " + bridge.peak + " " +
      w("of") + " " + bridge.port_capacity);
    bridge.load.forEach(function (step) {
      var bar = el("span", "pl-load" + (step.ports > 0.8 * bridge.port_capacity ? " pl-load-high" : ""));
      if (!place(bar, step.start_local, step.end_local)) return;
      bar.style.height = Math.max(8, Math.round(step.ports / bridge.port_capacity * 100)) + "%";
      bar.title = hhmm(step.start_local) + "–" + hhmm(step.end_local) + " · " + step.ports + "/" + bridge.port_capacity;
      track.appendChild(bar);
    });
    row.appendChild(track);
    return row;
  }

  function roomRow(room) {
    var row = el("div", "pl-row");
    var name = el("label", "pl-name");
    var box = el("input");
    box.type = "checkbox";
    box.value = room.id;
    box.addEventListener("change", function () {
      ticked = box.checked ? ticked.concat([String(room.id)]) : ticked.filter(function (id) { return id !== String(room.id); });
      slots();
    });
    name.appendChild(box);
    name.appendChild(el("span", "", room.name));
    name.title = room.name + " · " + room.unit_name;
    row.appendChild(name);
    var track = el("div", "pl-track");
    room.blocks.forEach(function (b) {
      if (b.kind === "meeting" && b.window_start_local < b.start_local) {
        var lead = el("span", "pl-lead");
        if (place(lead, b.window_start_local, b.start_local)) {
          lead.title = w("check") + " " + hhmm(b.window_start_local) + "–" + hhmm(b.start_local);
          track.appendChild(lead);
        }
      }
      var block = el(b.kind === "meeting" ? "a" : "span", "pl-block pl-kind-" + b.kind + (b.status === "tentative" ? " pl-tentative" : ""));
      if (!place(block, b.start_local, b.end_local)) return;
      var label = b.kind === "meeting" ? (b.title || w("meeting"))
        : b.kind === "block" ? w("blocked") + (b.reason ? " · " + b.reason : "")
        : w("maintenance") + " · " + b.endpoint_name;
      block.title = hhmm(b.start_local) + "–" + hhmm(b.end_local) + " " + label + (b.status === "tentative" ? " (" + w("tentative") + ")" : "");
      block.textContent = label;
      if (b.kind === "meeting") block.href = "/meetings/" + b.meeting_id + "?occurrence=" + b.occurrence_id;
      track.appendChild(block);
    });
    if (canBook) {
      track.classList.add("pl-bookable");
      track.addEventListener("click", function (event) {
        if (event.target !== track) return;
        var rect = track.getBoundingClientRect();
        var f = (event.clientX - rect.left) / rect.width * days;
        var d = Math.min(Math.floor(f), days - 1);
        var minutes = HOUR_FROM * 60 + Math.floor((f - d) * span / SNAP) * SNAP;
        var rooms = ticked.indexOf(String(room.id)) >= 0 ? ticked : [String(room.id)].concat(ticked);
        window.location.href = bookingLink(addDays(first, d), minutes, rooms);
      });
    }
    row.appendChild(track);
    return row;
  }

  function render(grid) {
    root.textContent = "";
    var scroller = el("div", "pl-scroll");
    var sheet = el("div", "pl-sheet" + (days > 1 ? " pl-week" : ""));
    sheet.appendChild(axis());
    grid.bridges.forEach(function (b) { sheet.appendChild(bridgeRow(b)); });
    var groups = {};
    var order = [];
    grid.rooms.forEach(function (room) {
      if (!groups[room.unit_id]) { groups[room.unit_id] = {name: room.unit_name, rooms: []}; order.push(room.unit_id); }
      groups[room.unit_id].rooms.push(room);
    });
    function selectAllButton(scope) {
      var all = el("button", "small ghost", w("select-all"));
      all.type = "button";
      all.addEventListener("click", function () {
        if (scope.tagName === "DETAILS") scope.open = true;
        scope.querySelectorAll("input[type=checkbox]").forEach(function (box) {
          if (!box.checked) { box.checked = true; ticked.push(box.value); }
        });
        slots();
      });
      return all;
    }
    if (order.length === grid.rooms.length) {
      // One room per unit (a commune's điểm cầu): a flat list, the room name says the unit.
      var flat = el("div", "pl-group pl-flat");
      flat.appendChild(selectAllButton(flat));
      grid.rooms.forEach(function (room) { flat.appendChild(roomRow(room)); });
      sheet.appendChild(flat);
    } else {
      order.forEach(function (id) {
        var group = groups[id];
        var details = el("details", "pl-group");
        details.open = true;
        details.appendChild(el("summary", "", group.name + " · " + group.rooms.length + " " + w("rooms")));
        details.appendChild(selectAllButton(details));
        group.rooms.forEach(function (room) { details.appendChild(roomRow(room)); });
        sheet.appendChild(details);
      });
    }
    scroller.appendChild(sheet);
    root.appendChild(scroller);
    if (canBook) root.appendChild(el("p", "muted", w("book-here")));
  }

  var pending = null;
  function slots() {
    var list = document.getElementById("planner-slots");
    var hint = document.getElementById("planner-hint");
    clearTimeout(pending);
    if (!ticked.length) { list.textContent = ""; hint.textContent = w("choose-rooms"); return; }
    pending = setTimeout(function () {
      var params = new URLSearchParams({from_date: first, to_date: addDays(first, 6), duration_minutes: duration, count: 20});
      ticked.forEach(function (id) { params.append("room_ids", id); });
      fetch("/api/v1/availability?" + params.toString(), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r); })
        .then(function (found) {
          list.textContent = "";
          hint.textContent = found.length ? ticked.length + " " + w("rooms") : w("no-slots");
          found.forEach(function (slot) {
            var item = el("li");
            var local = slot.start_local;
            var text = weekdays[(dayIndex(local.slice(0, 10)) % 7 + 7) % 7] + " " + local.slice(8, 10) + "/" + local.slice(5, 7) +
              " " + hhmm(local) + "–" + hhmm(slot.end_local);
            if (canBook) {
              var link = el("a", "", text);
              link.href = bookingLink(local.slice(0, 10), parseInt(local.slice(11, 13), 10) * 60 + parseInt(local.slice(14, 16), 10), ticked);
              item.appendChild(link);
            } else {
              item.textContent = text;
            }
            list.appendChild(item);
          });
        })
        .catch(function () { hint.textContent = w("failed"); });
    }, 250);
  }

  var params = new URLSearchParams({day: first, days: days});
  if (group) params.set("site_group_id", group);  // a site group's rooms instead of the unit's
  else if (unit) params.set("unit_id", unit);
  fetch("/api/v1/availability/grid?" + params.toString(), {credentials: "same-origin"})
    .then(function (r) { return r.ok ? r.json() : Promise.reject(r); })
    .then(render)
    .catch(function () { root.textContent = w("failed"); });
})();
