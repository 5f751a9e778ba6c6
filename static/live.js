/* Live dashboard without a build step or library.
 *
 * #live-panels carries data-channels (JSON list of WebSocket paths: /ws/secretariat, or an operator's
 * /ws/units/{id}) and data-refresh (the URL of the same panels as an HTML fragment). The browser's own
 * session cookie authenticates the same-origin socket (notify/live.py checks Origin against Host).
 * Every event message (readiness.changed, endpoint.status, meeting.*, call.*) re-fetches the panels,
 * at most one fetch at a time, coalescing bursts; the server renders them, so the page and the
 * fragment never disagree. A dropped socket reconnects with ?since=<last id> (1 s, 2 s, … 30 s). */
(function () {
  'use strict';
  var panels = document.getElementById('live-panels');
  var badge = document.getElementById('live-state');
  if (!panels || !window.WebSocket) { return; }
  var channels = JSON.parse(panels.getAttribute('data-channels') || '[]');
  var refreshUrl = panels.getAttribute('data-refresh');
  var fetching = false, again = false;

  function setState(state) {
    if (!badge) { return; }
    badge.setAttribute('data-state', state);
    badge.querySelector('.live-text').textContent = badge.getAttribute('data-text-' + state) || '';
  }

  function refresh() {
    if (fetching) { again = true; return; }
    fetching = true;
    fetch(refreshUrl, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } }).then(function (response) {
      if (response.status === 401) { window.location.reload(); return null; }
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (html !== null && html !== undefined) {
        // <details id> the person opened or closed stay so after the swap.
        var opened = {};
        Array.prototype.forEach.call(panels.querySelectorAll('details[id]'), function (d) { opened[d.id] = d.open; });
        panels.innerHTML = html;
        Array.prototype.forEach.call(panels.querySelectorAll('details[id]'), function (d) {
          if (Object.prototype.hasOwnProperty.call(opened, d.id)) { d.open = opened[d.id]; }
        });
        panels.setAttribute('data-refreshed', String((Number(panels.getAttribute('data-refreshed')) || 0) + 1));
      }
    }).catch(function () { /* the next event or reconnect refreshes again */ }).then(function () {
      fetching = false;
      if (again) { again = false; refresh(); }
    });
  }

  function open(path) {
    var lastId = null, delay = 1000, opened = false;
    function connect() {
      var scheme = window.location.protocol === 'https:' ? 'wss://' : 'ws://';
      var url = scheme + window.location.host + path + (lastId !== null ? '?since=' + lastId : '');
      var socket = new WebSocket(url);
      socket.onopen = function () { delay = 1000; setState('live'); };
      socket.onmessage = function (event) {
        var message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        if (message.type === 'ping') { socket.send(JSON.stringify({ type: 'pong' })); return; }
        if (typeof message.id === 'number') { lastId = message.id; }
        if (message.type === 'snapshot') {
          if (opened) { refresh(); }  // after a gap too old to replay: what changed is unknown
          opened = true;
          return;
        }
        if (message.type && message.type !== 'pong') { refresh(); }
      };
      socket.onclose = function (event) {
        setState('lost');
        // 4401: the web session has ended (refresh() then gets 401 and reloads to the login form), or a
        // proxy changed Host so the Origin check failed: no retry loop either way.
        if (event.code === 4401) { refresh(); return; }
        if (event.code === 4403 || event.code === 4404) { return; }
        window.setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    connect();
  }

  channels.forEach(open);
}());
