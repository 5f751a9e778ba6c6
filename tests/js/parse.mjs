// Reads one iCalendar object on stdin, parses it with Mozilla ical.js and prints JSON:
// {"method", "name", "timezones", "events": [{uid, summary, description, location, status,
//   sequence, dtstart, dtend, tzid, recurrenceId, rrule, exdates, occurrences}]}.
// Times are local wall-clock "YYYY-MM-DDTHH:MM:SS" in their TZID; a series' occurrences are
// expanded (at most 200) with ical.js's own iterator, EXDATE applied.
import ICAL from "ical.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString("utf8");

const root = new ICAL.Component(ICAL.parse(text));
for (const vtz of root.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(vtz);
}
const local = (t) => (t ? t.toString() : null);
const events = root.getAllSubcomponents("vevent").map((vevent) => {
  const event = new ICAL.Event(vevent);
  const occurrences = [];
  if (event.isRecurring()) {
    const it = event.iterator();
    for (let next = it.next(); next && occurrences.length < 200; next = it.next()) {
      occurrences.push(local(next));
    }
  }
  const rrule = vevent.getFirstPropertyValue("rrule");
  return {
    uid: event.uid,
    summary: event.summary,
    description: event.description,
    location: event.location,
    status: vevent.getFirstPropertyValue("status"),
    sequence: event.sequence,
    dtstart: local(event.startDate),
    dtend: local(event.endDate),
    tzid: event.startDate ? event.startDate.zone.tzid : null,
    recurrenceId: local(event.recurrenceId),
    rrule: rrule ? rrule.toString() : null,
    exdates: vevent.getAllProperties("exdate").flatMap((p) => p.getValues().map(local)),
    attendees: vevent.getAllProperties("attendee").map((p) => ({value: p.getFirstValue(), cutype: p.getParameter("cutype")})),
    occurrences,
  };
});
process.stdout.write(JSON.stringify({
  method: root.getFirstPropertyValue("method"),
  name: root.getFirstPropertyValue("name"),
  timezones: root.getAllSubcomponents("vtimezone").map((tz) => tz.getFirstPropertyValue("tzid")),
  events,
}));
