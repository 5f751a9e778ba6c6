/* Small page helpers without a build step: copy-to-clipboard buttons (data-copy="<input id>"). */
(function () {
  'use strict';
  document.addEventListener('click', function (event) {
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
}());
