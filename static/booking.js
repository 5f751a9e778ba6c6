/* The booking component (đặt lịch họp, and the series and occurrence edit screens, issue 13): live
 * conflict check, free-slot suggestions (new meetings), participant search and shortcuts, the repeat
 * rule's fields. A form with data-check-url (the edit screens) posts itself, as the browser would on
 * save, to that dry run (web/edit.py); the new-meeting form posts its MeetingCreate JSON to
 * POST /meetings/new/check. Both answer with rendered lines and the rule in words (summary). Vanilla JS, no build step, no external asset. Messages arrive translated
 * from the server (#booking-messages); the check's conflict and holiday lines arrive rendered
 * (POST /meetings/new/check, web.booking.conflict_messages) and are shown as given; times shown as HH:MM and dd/mm/yyyy, local as the API gives
 * them (*_local fields). Cookie-authenticated API writes send the page's CSRF token (web/csrf.py). */
(function () {
  'use strict';
  var form = document.getElementById('booking');
  if (!form) { return; }
  var M = JSON.parse(document.getElementById('booking-messages').textContent);
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute('content');
  var checkBox = document.getElementById('check');
  var slotsBox = document.getElementById('slots');
  var checkUrl = form.getAttribute('data-check-url');
  var summaryBox = document.getElementById('repeat-summary');
  var DMY = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/;
  var HM = /^(\d{1,2}):(\d{2})$/;

  function fmt(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_m, key) { return values[key] == null ? '' : String(values[key]); });
  }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function parts(iso) {
    var m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)/.exec(iso || '');
    return m ? { y: +m[1], mo: +m[2], d: +m[3], h: m[4], mi: m[5] } : null;
  }
  function weekday(p) { return M.weekdays[(new Date(Date.UTC(p.y, p.mo - 1, p.d)).getUTCDay() + 6) % 7]; }
  function dmy(p) { return pad(p.d) + '/' + pad(p.mo) + '/' + p.y; }
  function day(p) { return weekday(p) + ', ' + dmy(p); }
  /* Same shape as web.i18n.fmt_range: "08:00–10:00 Thứ Hai, 02/03/2026". */
  function range(a, b) {
    var s = parts(a), e = parts(b);
    var text = s.h + ':' + s.mi + '–' + e.h + ':' + e.mi + ' ' + day(s);
    if (dmy(s) !== dmy(e)) { text += ' → ' + day(e); }
    return text;
  }
  function val(name) { var el = form.elements[name]; return el ? String(el.value).trim() : ''; }
  function isoOf(dateText, timeText) {
    var d = DMY.exec(dateText), t = HM.exec(timeText);
    if (!d || !t || +t[1] > 23 || +t[2] > 59) { return null; }
    var real = new Date(Date.UTC(+d[3], +d[2] - 1, +d[1]));
    if (real.getUTCDate() !== +d[1] || real.getUTCMonth() !== +d[2] - 1) { return null; }  // 31/02 is no day
    return d[3] + '-' + pad(+d[2]) + '-' + pad(+d[1]) + 'T' + pad(+t[1]) + ':' + t[2] + ':00';
  }
  var FREQS = { daily: 'DAILY', weekly: 'WEEKLY', monthly: 'MONTHLY' };
  /* The same rule as web/repeat.py rrule_for. */
  function rrule() {
    var r = val('repeat');
    if (r === 'custom') { return val('repeat_rule') || null; }
    if (!FREQS[r]) { return null; }
    var rule = 'FREQ=' + FREQS[r];
    var days = [];
    Array.prototype.forEach.call(form.querySelectorAll('input[name="repeat_byday"]'), function (el) {
      if (el.checked) { days.push(el.value); }
    });
    if (r === 'weekly' && days.length) { rule += ';BYDAY=' + days.join(','); }
    if (/^\d+$/.test(val('repeat_count'))) { return rule + ';COUNT=' + val('repeat_count'); }
    var u = DMY.exec(val('repeat_until'));
    if (u) { return rule + ';UNTIL=' + u[3] + pad(+u[2]) + pad(+u[1]) + 'T235959'; }
    return undefined;
  }
  function roomBoxes() { return form.querySelectorAll('input[name="participant_room_ids"]'); }
  function chosenRooms() {
    var out = [];
    Array.prototype.forEach.call(roomBoxes(), function (el) { if (el.checked) { out.push(+el.value); } });
    return out;
  }
  /* The same MeetingCreate the form's POST builds (web/booking.py form_to_meeting). */
  function payload() {
    var start = isoOf(val('date'), val('start_time')), end = isoOf(val('date'), val('end_time'));
    var chair = +val('chair_room_id'), rule = rrule();
    if (!start || !end || !chair || rule === undefined) { return null; }
    var p = { title: val('title') || '…', chair_room_id: chair, start: start, end: end,
              participant_room_ids: chosenRooms().filter(function (r) { return r !== chair; }) };
    if (/^\d+$/.test(val('check_lead_minutes'))) { p.check_lead_minutes = +val('check_lead_minutes'); }
    if (val('bridge_id')) { p.bridge_id = +val('bridge_id'); }
    if (/^\d$/.test(val('priority'))) { p.priority = +val('priority'); }
    if (val('upstream_dial').trim()) { p.upstream_dial = val('upstream_dial').trim(); }
    if (rule) { p.rrule = rule; }
    return p;
  }
  function link(text, href) {
    if (!href) { return document.createTextNode(text); }
    var a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    return a;
  }
  /* A line is a sentence, or a conflict line rendered by the server (web.booking.conflict_messages:
   * {text, href, summary, items}), shown as templates/_conflicts.html shows it. */
  function show(kind, lines) {
    checkBox.className = 'check check-' + kind;
    checkBox.textContent = '';
    var list = document.createElement('ul');
    lines.forEach(function (line) {
      var li = document.createElement('li');
      if (typeof line === 'string') { li.textContent = line; list.appendChild(li); return; }
      li.className = line.heading ? 'conflict conflict-province' : 'conflict';
      var text = document.createElement('span');
      text.className = 'conflict-text';
      text.appendChild(link(line.text, line.href));
      li.appendChild(text);
      if (line.items && line.items.length) {
        var details = document.createElement('details'), summary = document.createElement('summary');
        var items = document.createElement('ul');
        summary.textContent = line.summary;
        details.appendChild(summary);
        line.items.forEach(function (item) {
          var entry = document.createElement('li');
          entry.appendChild(link(item.text, item.href));
          items.appendChild(entry);
        });
        details.appendChild(items);
        li.appendChild(details);
      }
      list.appendChild(li);
    });
    checkBox.appendChild(list);
  }
  function unique(list) { return list.filter(function (x, i) { return list.indexOf(x) === i; }); }
  function detailOf(body) {
    if (body && typeof body.detail === 'string') { return body.detail; }
    return JSON.stringify(body && body.detail);
  }

  /* At most one check in flight (an edit's check runs the save and rolls it back): changes made
   * meanwhile are checked once it answers. */
  var timer = null, sequence = 0, busy = false, again = false;
  function scheduleCheck() { clearTimeout(timer); timer = setTimeout(check, 300); }
  function settled() {
    busy = false;
    if (again) { again = false; check(); }
  }
  function request() {
    if (checkUrl) {
      return fetch(checkUrl, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Accept': 'application/json',
                   'X-CSRF-Token': csrf },
        body: new URLSearchParams(new FormData(form)).toString()
      });
    }
    return fetch('/meetings/new/check', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(payload())
    });
  }
  function check() {
    var p = checkUrl ? true : payload();
    if (!p) {
      var bad = (val('date') && val('start_time') && !isoOf(val('date'), val('start_time'))) ||
                (val('date') && val('end_time') && !isoOf(val('date'), val('end_time')));
      show(bad ? 'error' : 'info', [bad ? M.bad_date : M.incomplete]);
      return;
    }
    if (busy) { again = true; return; }
    busy = true;
    var mine = ++sequence;
    show('info', [M.checking]);
    request().then(function (r) {
      return r.json().then(function (body) { return { status: r.status, body: body }; });
    }).then(function (res) {
      settled();
      if (mine !== sequence || busy) { return; }
      if (summaryBox && res.body.summary) { summaryBox.textContent = res.body.summary; }
      if (res.status !== 200) {
        show('error', [fmt(M.error, { detail: res.body.error || detailOf(res.body) })]);
        return;
      }
      var warnings = unique(res.body.warnings || []);
      if (res.body.ok) { show(warnings.length ? 'warn' : 'ok', [M.ok].concat(warnings)); }
      else { show('error', res.body.lines.concat(warnings)); }
    }).catch(function (err) {
      settled();
      if (mine === sequence && !busy) { show('error', [fmt(M.error, { detail: String(err) })]); }
    });
  }

  function isoDate(p) { return p.y + '-' + pad(p.mo) + '-' + pad(p.d); }
  function suggest() {
    var p = payload();
    slotsBox.textContent = '';
    if (!p) {
      var bad = (val('date') && val('start_time') && !isoOf(val('date'), val('start_time'))) ||
                (val('date') && val('end_time') && !isoOf(val('date'), val('end_time')));
      show(bad ? 'error' : 'info', [bad ? M.bad_date : M.incomplete]);
      return;
    }
    var s = parts(p.start), e = parts(p.end);
    var minutes = (+e.h * 60 + +e.mi) - (+s.h * 60 + +s.mi);
    if (minutes <= 0) { return; }
    var from = new Date(Date.UTC(s.y, s.mo - 1, s.d)), to = new Date(from.getTime() + 14 * 86400000);
    var q = new URLSearchParams();
    q.append('duration_minutes', String(minutes));
    q.append('from_date', isoDate(s));
    q.append('to_date', to.toISOString().slice(0, 10));
    q.append('count', '5');
    [p.chair_room_id].concat(p.participant_room_ids).forEach(function (id) { q.append('room_ids', String(id)); });
    if (p.check_lead_minutes != null) { q.append('check_lead_minutes', String(p.check_lead_minutes)); }
    if (p.bridge_id) { q.append('bridge_id', String(p.bridge_id)); }
    fetch('/api/v1/availability?' + q.toString(), { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (r) { return r.json().then(function (body) { return { status: r.status, body: body }; }); })
      .then(function (res) {
        slotsBox.textContent = '';
        if (res.status !== 200) { show('error', [fmt(M.error, { detail: detailOf(res.body) })]); return; }
        var head = document.createElement('p');
        head.textContent = res.body.length ? M.suggest_title : M.suggest_none;
        slotsBox.appendChild(head);
        res.body.forEach(function (slot) {
          var button = document.createElement('button');
          button.type = 'button';
          button.className = 'slot';
          button.textContent = range(slot.start_local, slot.end_local);
          button.addEventListener('click', function () {
            var a = parts(slot.start_local), b = parts(slot.end_local);
            form.elements.date.value = dmy(a);
            form.elements.start_time.value = a.h + ':' + a.mi;
            form.elements.end_time.value = b.h + ':' + b.mi;
            slotsBox.textContent = '';
            check();
          });
          slotsBox.appendChild(button);
        });
      });
  }

  /* Participants: shortcuts and filter. */
  function fold(text) {
    return text.replace(/đ/g, 'd').replace(/Đ/g, 'd').normalize('NFD').replace(/[\u0300-\u036f]/g, '')
      .toLowerCase().replace(/\s+/g, ' ').trim();
  }
  function units() { return form.querySelectorAll('.unit'); }
  function roomsOf(unit) { return unit.querySelectorAll('input[name="participant_room_ids"]'); }
  function setRooms(unit, on) { Array.prototype.forEach.call(roomsOf(unit), function (el) { el.checked = on; }); }
  function syncToggles() {
    Array.prototype.forEach.call(units(), function (unit) {
      var rooms = roomsOf(unit), on = 0;
      Array.prototype.forEach.call(rooms, function (el) { if (el.checked) { on += 1; } });
      var toggle = unit.querySelector('.unit-toggle');
      toggle.checked = on > 0 && on === rooms.length;
      toggle.indeterminate = on > 0 && on < rooms.length;
    });
    document.getElementById('selected-count').textContent = fmt(M.selected, { n: chosenRooms().length });
  }
  function shownUnits() {
    return Array.prototype.filter.call(units(), function (unit) { return !unit.hidden; });
  }
  form.addEventListener('change', function (event) {
    var target = event.target;
    if (target.classList && target.classList.contains('unit-toggle')) {
      setRooms(target.closest('.unit'), target.checked);
    }
    if (target.id === 'repeat') { toggleRepeat(); }
    if (target.name === 'scope') { toggleScope(); }
    syncToggles();
    scheduleCheck();
  });
  form.addEventListener('input', function (event) {
    if (event.target.id !== 'unit-filter') { scheduleCheck(); }
  });
  document.getElementById('select-shown').addEventListener('click', function () {
    shownUnits().forEach(function (unit) { setRooms(unit, true); });
    syncToggles();
    scheduleCheck();
  });
  document.getElementById('all-communes').addEventListener('click', function () {
    Array.prototype.forEach.call(units(), function (unit) {
      if (unit.getAttribute('data-level') === 'commune') { setRooms(unit, true); }
    });
    syncToggles();
    scheduleCheck();
  });
  document.getElementById('all-rooms-of-units').addEventListener('click', function () {
    Array.prototype.forEach.call(units(), function (unit) {
      var any = Array.prototype.some.call(roomsOf(unit), function (el) { return el.checked; });
      if (any) { setRooms(unit, true); }
    });
    syncToggles();
    scheduleCheck();
  });
  document.getElementById('clear-rooms').addEventListener('click', function () {
    Array.prototype.forEach.call(roomBoxes(), function (el) { el.checked = false; });
    syncToggles();
    scheduleCheck();
  });
  document.getElementById('unit-filter').addEventListener('input', function (event) {
    var needle = fold(event.target.value);
    Array.prototype.forEach.call(units(), function (unit) {
      unit.hidden = needle !== '' && unit.getAttribute('data-search').indexOf(needle) === -1;
    });
    document.getElementById('shown-count').textContent = needle === '' ? '' : fmt(M.shown, { n: shownUnits().length });
  });
  if (document.getElementById('suggest')) { document.getElementById('suggest').addEventListener('click', suggest); }
  function each(selector, fn) { Array.prototype.forEach.call(form.querySelectorAll(selector), fn); }
  function toggleRepeat() {
    var r = val('repeat');
    each('.repeat-only', function (el) { el.hidden = r === 'none' || r === 'custom'; });
    each('.weekly-only', function (el) { el.hidden = r !== 'weekly'; });
  }
  /* Edit scopes (occurrence screen): "this only" hides what belongs to the series (title, rule). */
  function toggleScope() {
    var checked = form.querySelector('input[name="scope"]:checked');
    if (!checked) { return; }
    each('.series-only', function (el) { el.hidden = checked.value === 'this'; });
    each('.following-only', function (el) { el.hidden = checked.value !== 'following'; });
    ['this', 'following', 'series'].forEach(function (scope) {
      each('.scope-' + scope, function (el) { el.hidden = checked.value !== scope; });
    });
  }
  toggleRepeat();
  toggleScope();
  syncToggles();
  check();
}());
