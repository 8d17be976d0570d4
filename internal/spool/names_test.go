package spool_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"finonex/internal/spool"
)

// TestParseName reads every kind of name, with and without extensions, with dots, spaces and
// look-alike parts in the live name itself.
func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		path          string
		kind          spool.Kind
		live, claimed string
	}{
		{"/s/events", spool.Live, "/s/events", ""},
		{"/s/events.jsonl", spool.Live, "/s/events.jsonl", ""},
		{"/s/a.b.c", spool.Live, "/s/a.b.c", ""},
		{"/s/server_events.jsonl.gz", spool.Live, "/s/server_events.jsonl.gz", ""},
		{"/s/my events.jsonl", spool.Live, "/s/my events.jsonl", ""},
		{"/s/my_processed_events.jsonl", spool.Live, "/s/my_processed_events.jsonl", ""},
		{"/s" + stamp + "/events.jsonl", spool.Live, "/s" + stamp + "/events.jsonl", ""}, // in a directory only
		{"/s/events_20240506T050809.123456789Z.jsonl", spool.Live, "/s/events_20240506T050809.123456789Z.jsonl", ""},
		{"/s/events_20240506T050809.123456789Z-0A1B2C3D.jsonl", spool.Live, "/s/events_20240506T050809.123456789Z-0A1B2C3D.jsonl", ""},
		{"/s/x_processed.jsonl", spool.Processed, "", ""},
		{"/s/x_processed", spool.Processed, "", ""},
		{"/s/x_rejected.jsonl", spool.Rejected, "", ""},

		{"/s/events" + stamp, spool.Claimed, "/s/events", "/s/events" + stamp},
		{"/s/events" + stamp + "_processed", spool.Processed, "/s/events", "/s/events" + stamp},
		{"/s/events" + stamp + "_rejected", spool.Rejected, "/s/events", "/s/events" + stamp},
		{"/s/events" + stamp + ".jsonl", spool.Claimed, "/s/events.jsonl", "/s/events" + stamp + ".jsonl"},
		{"/s/events" + stamp + "_processed.jsonl", spool.Processed, "/s/events.jsonl", "/s/events" + stamp + ".jsonl"},
		{"/s/events" + stamp + "_rejected.jsonl", spool.Rejected, "/s/events.jsonl", "/s/events" + stamp + ".jsonl"},
		{"/s/a.b" + stamp + ".c", spool.Claimed, "/s/a.b.c", "/s/a.b" + stamp + ".c"},
		{"/s/server_events.jsonl" + stamp + "_processed.gz", spool.Processed, "/s/server_events.jsonl.gz", "/s/server_events.jsonl" + stamp + ".gz"},
		{"/s/my events" + stamp + ".jsonl", spool.Claimed, "/s/my events.jsonl", "/s/my events" + stamp + ".jsonl"},
		{"/s/x_processed" + stamp + ".jsonl", spool.Claimed, "/s/x_processed.jsonl", "/s/x_processed" + stamp + ".jsonl"},
		// A live name that itself holds a claim part: the last one is the claim.
		{"/s/e" + stamp + stamp + "_processed.jsonl", spool.Processed, "/s/e" + stamp + ".jsonl", "/s/e" + stamp + stamp + ".jsonl"},
		// A processed file renamed by hand, keeping an extension added or dropping the suffix.
		{"/s/events" + stamp + "_processed.jsonl.bak", spool.Processed, "", ""},
		{"/s/events" + stamp + "_processed (1).jsonl", spool.Processed, "", ""},
		{"/s/events" + stamp + "_processed~", spool.Processed, "", ""},
		{"/s/events" + stamp + "_processed-copy", spool.Processed, "", ""},
		{"/s/events" + stamp + "_PROCESSED.jsonl", spool.Processed, "", ""},
		{"/s/events_Processed.jsonl", spool.Processed, "", ""},
		{"/s/x_rejected (2).jsonl", spool.Rejected, "", ""},
		{"/s/events" + stamp + "_duplicate.jsonl", spool.Duplicate, "/s/events.jsonl", "/s/events" + stamp + ".jsonl"},
		{"/s/x_duplicate", spool.Duplicate, "", ""},
		// A claimed file renamed by hand: never claimed, never applied.
		{"/s/events" + stamp + ".jsonl.bak", spool.Renamed, "", ""},
		{"/s/events" + stamp + "x.jsonl", spool.Renamed, "", ""},
		{"/s/copy of events" + stamp + " (1).jsonl", spool.Renamed, "", ""},
		{"rel/events" + stamp + ".jsonl", spool.Claimed, "rel/events.jsonl", "rel/events" + stamp + ".jsonl"},
		{"events" + stamp + "_processed", spool.Processed, "events", "events" + stamp},
	} {
		got := spool.ParseName(tc.path)
		if got.Path != tc.path || got.Kind != tc.kind || got.Live != tc.live || got.Claimed != tc.claimed {
			t.Errorf("ParseName(%q) = %+v; want kind %v, live %q, claimed %q", tc.path, got, tc.kind, tc.live, tc.claimed)
		}
		if err := spool.CheckLive(tc.path); (err == nil) != (tc.kind == spool.Live) {
			t.Errorf("CheckLive(%q) = %v; want an error exactly when the name is not live", tc.path, err)
		} else if err != nil && !strings.Contains(err.Error(), tc.kind.String()) {
			t.Errorf("CheckLive(%q) = %v; want it to say the name is %s", tc.path, err, tc.kind)
		}
	}
}

// TestNameRoundTrip claims live names of every shape and reads the names back: each claimed,
// processed and rejected name leads back to its live file and its claimed name.
func TestNameRoundTrip(t *testing.T) {
	for _, live := range []string{
		"/s/events", "/s/events.jsonl", "/s/a.b.c", "/s/server_events.jsonl.gz", "/s/my events.jsonl",
		"/s/my_processed_events.jsonl", "rel/e", ".hidden", "/s/.jsonl", "/s/x_processedness.jsonl",
	} {
		claimed, err := spool.ClaimName(live, time.Now())
		if err != nil {
			t.Fatalf("ClaimName(%q): %v", live, err)
		}
		if filepath.Dir(claimed) != filepath.Dir(live) {
			t.Errorf("ClaimName(%q) = %q; want it in the same directory", live, claimed)
		}
		for _, tc := range []struct {
			path string
			kind spool.Kind
		}{{claimed, spool.Claimed}, {spool.ProcessedName(claimed), spool.Processed}, {spool.RejectedName(claimed), spool.Rejected}} {
			got := spool.ParseName(tc.path)
			if got.Kind != tc.kind || got.Live != live || got.Claimed != claimed {
				t.Errorf("ParseName(%q) = %+v; want kind %v, live %q, claimed %q", tc.path, got, tc.kind, live, claimed)
			}
		}
	}
	for _, notLive := range []string{"/s/events" + stamp + ".jsonl", "/s/x_processed.jsonl", "/s/events" + stamp + "_rejected", "/s/events" + stamp + "x.jsonl"} {
		if name, err := spool.ClaimName(notLive, time.Now()); err == nil {
			t.Errorf("ClaimName(%q) = %q, nil; want an error: it is not a live name", notLive, name)
		}
	}
}
