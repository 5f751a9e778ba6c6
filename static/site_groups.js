/* Booking page: choosing a saved site group (nhóm điểm cầu) ticks its rooms. The change event then
   bubbles to the booking form, whose own handler (booking.js) recounts and re-checks the schedule. */
(function () {
  'use strict';
  var select = document.getElementById('site-group');
  if (!select) { return; }
  select.addEventListener('change', function () {
    var option = select.options[select.selectedIndex];
    var ids = (option && option.getAttribute('data-rooms') || '').split(',').filter(Boolean);
    ids.forEach(function (id) {
      var box = document.querySelector('input[name="participant_room_ids"][value="' + id + '"]');
      if (box) { box.checked = true; }
    });
  });
}());
