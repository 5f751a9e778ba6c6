/* Small page helpers without a build step, loaded on every page (external file: no inline script):
   - copy-to-clipboard buttons (data-copy="<input id>");
   - the header's menu button on narrow screens (the menu stays open without JavaScript);
   - table cells labelled with their column heading (data-label), shown when tables become lists on phones;
   - the meeting page's readiness form: choosing another site shows that site's stored state and note
     (option data-state / data-note), so a re-send never turns a reported problem into "ready". */
(function () {
  'use strict';
  document.documentElement.classList.add('js');

  document.addEventListener('click', function (event) {
    var toggle = event.target.closest ? event.target.closest('.menu-toggle') : null;
    if (toggle) {
      var open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
      document.getElementById(toggle.getAttribute('aria-controls')).classList.toggle('open', open);
      return;
    }
    var button = event.target.closest ? event.target.closest('[data-copy]') : null;
    if (!button) { return; }
    var input = document.getElementById(button.getAttribute('data-copy'));
    input.select();
    var done = function () { button.textContent = button.getAttribute('data-done') || button.textContent; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand('copy'); done(); });
    } else {
      document.execCommand('copy');
      done();
    }
  });

  function label(root) {
    var tables = root.querySelectorAll ? root.querySelectorAll('table.grid') : [];
    Array.prototype.forEach.call(tables, function (table) {
      var heads = table.querySelectorAll('thead th');
      if (!heads.length) { return; }
      var names = Array.prototype.map.call(heads, function (th) { return th.textContent.trim(); });
      Array.prototype.forEach.call(table.querySelectorAll('tbody tr, tfoot tr'), function (row) {
        Array.prototype.forEach.call(row.children, function (cell, i) {
          if (names[i] && !cell.hasAttribute('data-label') && !(cell.colSpan > 1)) {
            cell.setAttribute('data-label', names[i]);
          }
        });
      });
    });
  }
  label(document);
  // Live panels (live.js) replace their tables: label the new ones.
  new MutationObserver(function (changes) {
    changes.forEach(function (change) {
      Array.prototype.forEach.call(change.addedNodes, function (node) { if (node.nodeType === 1) { label(node.parentNode || node); } });
    });
  }).observe(document.body, {childList: true, subtree: true});

  document.addEventListener('change', function (event) {
    var select = event.target;
    if (!select || select.id !== 'ready-room') { return; }
    var option = select.options[select.selectedIndex];
    var form = select.form;
    Array.prototype.forEach.call(form.querySelectorAll('input[name="state"]'), function (radio) {
      radio.checked = radio.value === option.getAttribute('data-state');
    });
    form.querySelector('textarea[name="note"]').value = option.getAttribute('data-note') || '';
  });
}());
