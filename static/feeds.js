/* Calendar feeds page: the scope picker filters its ~300 options as one types (with or without
   diacritics: options carry data-search, the server's fold()), and selects the first match. */
(function () {
  'use strict';
  var input = document.getElementById('scope-filter'), select = document.getElementById('scope');
  if (!input || !select) { return; }
  function fold(text) {
    return text.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/đ/g, 'd').replace(/Đ/g, 'd')
      .toLowerCase().replace(/\s+/g, ' ').trim();
  }
  input.addEventListener('input', function () {
    var words = fold(input.value).split(' ').filter(Boolean), first = null;
    Array.prototype.forEach.call(select.options, function (option) {
      var text = option.getAttribute('data-search') || '';
      var shown = words.every(function (w) { return text.indexOf(w) >= 0; });
      option.hidden = !shown;
      option.disabled = !shown;
      if (shown && !first) { first = option; }
    });
    Array.prototype.forEach.call(select.querySelectorAll('optgroup'), function (group) {
      group.hidden = !group.querySelector('option:not([hidden])');
    });
    if (first) { first.selected = true; }
  });
}());
