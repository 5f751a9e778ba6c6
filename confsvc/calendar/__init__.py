"""calendar domain: iCal invites and feeds, feed tokens, feed cache."""
