package main

import (
	"finonex/internal/testenv"

	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"finonex/internal/event"
	"finonex/internal/pgtest"
	"finonex/internal/prom"
	"finonex/internal/spool"
	"finonex/internal/store"
)

const validEvent = `{"userId":"user1","name":"add_revenue","value":98}`

func TestAuthorization(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, newDSN(t), spool.Options{})
	endpoints := []struct {
		method, path, body string
	}{
		{http.MethodPost, "/liveEvent", validEvent},
		{http.MethodGet, "/userEvents/user1", ""},
		{http.MethodGet, "/debug/vars", ""},
	}
	auths := []struct {
		name  string
		value *string // nil: no header at all
	}{
		{"missing", nil},
		{"empty", ptr("")},
		{"wrong", ptr("wrong")},
		{"prefix of secret", ptr(testSecret[:len(testSecret)-1])},
		{"first byte of secret", ptr(testSecret[:1])},
		{"secret plus a byte", ptr(testSecret + "x")},
		{"bearer secret", ptr("Bearer " + testSecret)},
		{"other case", ptr(strings.ToUpper(testSecret))},
	}
	for _, ep := range endpoints {
		for _, a := range auths {
			t.Run(ep.method+" "+ep.path+"/"+a.name, func(t *testing.T) {
				before := ts.contents(t)
				hdr := map[string]string{}
				if a.value != nil {
					hdr["Authorization"] = *a.value
				}
				r := ts.do(t, ep.method, ep.path, []byte(ep.body), hdr)
				wantJSONError(t, fmt.Sprintf("%s %s with %s Authorization", ep.method, ep.path, a.name), r, http.StatusUnauthorized)
				if after := ts.contents(t); after != before {
					t.Errorf("events file changed on a 401: %q -> %q", before, after)
				}
			})
		}
	}
	// The right secret gets through everywhere.
	wantOK(t, "POST with the secret", ts.post(t, validEvent, nil))
	if r := ts.get(t, "/debug/vars"); r.status != http.StatusOK {
		t.Errorf("GET /debug/vars with the secret: %d; want 200", r.status)
	}
}

func ptr(s string) *string { return &s }

// During a rotation both the new and the old secret are accepted, and nothing else.
func TestAuthorizationTwoSecrets(t *testing.T) {
	t.Parallel()
	const old = "old-Secret-Value-1"
	ts := newTestServerSecrets(t, newDSN(t), spool.Options{}, []string{testSecret, old})
	for _, secret := range []string{testSecret, old} {
		r := ts.do(t, http.MethodPost, "/liveEvent", []byte(validEvent), map[string]string{"Authorization": secret})
		if r.status != http.StatusOK {
			t.Errorf("POST with secret %q = %d; want 200", secret, r.status)
		}
		if r := ts.do(t, http.MethodGet, "/debug/vars", nil, map[string]string{"Authorization": secret}); r.status != http.StatusOK {
			t.Errorf("GET /debug/vars with secret %q = %d; want 200", secret, r.status)
		}
	}
	for _, bad := range []string{"", "x", old[:len(old)-1], testSecret + old, old + testSecret, testSecret + "," + old} {
		before := ts.contents(t)
		r := ts.do(t, http.MethodPost, "/liveEvent", []byte(validEvent), map[string]string{"Authorization": bad})
		wantJSONError(t, fmt.Sprintf("POST with Authorization %q", bad), r, http.StatusUnauthorized)
		if after := ts.contents(t); after != before {
			t.Errorf("events file changed on a 401")
		}
	}
	if n := len(lines(ts.contents(t))); n != 2 {
		t.Errorf("events file has %d lines; want 2", n)
	}
}

func TestLiveEventRejects(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{})
	second := `{"userId":"evil","name":"add_revenue","value":1000000}`
	tests := []struct {
		name, body string
	}{
		{"invalid JSON: unterminated object", `{"userId":"user1","name":"add_revenue","value":98`},
		{"invalid JSON: lone brace", `{`},
		{"invalid JSON: garbage", `hello`},
		{"invalid JSON: single quotes", `{'userId':'user1','name':'add_revenue','value':98}`},
		{"invalid JSON: trailing comma", `{"userId":"user1","name":"add_revenue","value":98,}`},
		{"not an object: array", `["user1","add_revenue",98]`},
		{"not an object: string", `"user1"`},
		{"not an object: null", `null`},
		{"empty object", `{}`},
		{"missing userId", `{"name":"add_revenue","value":98}`},
		{"missing name", `{"userId":"user1","value":98}`},
		{"missing value", `{"userId":"user1","name":"add_revenue"}`},
		{"unknown key", `{"userId":"user1","name":"add_revenue","value":98,"extra":1}`},
		{"unknown key: user_id", `{"user_id":"user1","name":"add_revenue","value":98}`},
		{"idempotencyKey in body", `{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"k1"}`},
		{"duplicate key userId", `{"userId":"user1","userId":"user2","name":"add_revenue","value":98}`},
		{"duplicate key value", `{"userId":"user1","name":"add_revenue","value":98,"value":98}`},
		{"duplicate key via escape", `{"userId":"user1","name":"add_revenue","value":98,"\u0076alue":1}`},
		{"value 98.0", `{"userId":"user1","name":"add_revenue","value":98.0}`},
		{"value 1e2", `{"userId":"user1","name":"add_revenue","value":1e2}`},
		{"value 1E2", `{"userId":"user1","name":"add_revenue","value":1E2}`},
		{`value "98"`, `{"userId":"user1","name":"add_revenue","value":"98"}`},
		{"value -5", `{"userId":"user1","name":"add_revenue","value":-5}`},
		{"value -0", `{"userId":"user1","name":"add_revenue","value":-0}`},
		{"value +5", `{"userId":"user1","name":"add_revenue","value":+5}`},
		{"value true", `{"userId":"user1","name":"add_revenue","value":true}`},
		{"value null", `{"userId":"user1","name":"add_revenue","value":null}`},
		{"value leading zero", `{"userId":"user1","name":"add_revenue","value":098}`},
		{"value 2^53", `{"userId":"user1","name":"add_revenue","value":9007199254740992}`},
		{"value too large", `{"userId":"user1","name":"add_revenue","value":99999999999999999999999999}`},
		{"value object", `{"userId":"user1","name":"add_revenue","value":{}}`},
		{"userId empty", `{"userId":"","name":"add_revenue","value":98}`},
		{"userId 256 bytes", `{"userId":"` + strings.Repeat("a", 256) + `","name":"add_revenue","value":98}`},
		{"userId 256 bytes of UTF-8", `{"userId":"` + strings.Repeat("é", 128) + `","name":"add_revenue","value":98}`},
		{"userId control char escaped", `{"userId":"a\u0001b","name":"add_revenue","value":98}`},
		{"userId NUL escaped", `{"userId":"a\u0000b","name":"add_revenue","value":98}`},
		{"userId newline escaped", `{"userId":"a\nb","name":"add_revenue","value":98}`},
		{"userId DEL escaped", `{"userId":"a\u007fb","name":"add_revenue","value":98}`},
		{"userId raw control char", "{\"userId\":\"a\x01b\",\"name\":\"add_revenue\",\"value\":98}"},
		{"userId raw newline", "{\"userId\":\"a\nb\",\"name\":\"add_revenue\",\"value\":98}"},
		{"userId raw DEL", "{\"userId\":\"a\x7fb\",\"name\":\"add_revenue\",\"value\":98}"},
		{"userId number", `{"userId":5,"name":"add_revenue","value":98}`},
		{"userId null", `{"userId":null,"name":"add_revenue","value":98}`},
		{"userId bad escape", `{"userId":"a\qb","name":"add_revenue","value":98}`},
		{"bad name", `{"userId":"user1","name":"add","value":98}`},
		{"bad name: other case", `{"userId":"user1","name":"ADD_REVENUE","value":98}`},
		{"bad name: trailing space", `{"userId":"user1","name":"add_revenue ","value":98}`},
		{"bad name: number", `{"userId":"user1","name":1,"value":98}`},
		{"trailing data", validEvent + ` x`},
		{"trailing comma", validEvent + `,`},
		{"two objects", validEvent + validEvent},
		{"second line smuggled", validEvent + "\n" + second},
		{"second line smuggled, CRLF", validEvent + "\r\n" + second + "\r\n"},
		{"second line smuggled, trailing newline", validEvent + "\n" + second + "\n"},
		{"invalid UTF-8 in userId", "{\"userId\":\"\xff\xfe\",\"name\":\"add_revenue\",\"value\":98}"},
		{"invalid UTF-8 after object", validEvent + " \xff"},
		{"truncated UTF-8 in userId", "{\"userId\":\"\xe6\x97\",\"name\":\"add_revenue\",\"value\":98}"},
		{"empty body", ``},
		{"whitespace body", " \n\t\r\n "},
		{"BOM before object", "\xef\xbb\xbf" + validEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.contents(t)
			r := ts.post(t, tt.body, nil)
			wantJSONError(t, fmt.Sprintf("POST %q", tt.body), r, http.StatusBadRequest)
			if after := ts.contents(t); after != before {
				t.Errorf("POST %q wrote to the events file: %q -> %q", tt.body, before, after)
			}
		})
	}
	if got := ts.contents(t); got != "" {
		t.Errorf("events file after only rejects = %q; want empty", got)
	}
}

func TestBodySize(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{})

	pad := func(body string, n int) string { return body + strings.Repeat(" ", n-len(body)) }
	tooBig := pad(validEvent, event.MaxLineBytes+1)
	r := ts.post(t, tooBig, nil)
	wantJSONError(t, "POST of 65537 bytes", r, http.StatusRequestEntityTooLarge)
	if got := ts.contents(t); got != "" {
		t.Errorf("events file after a 413 = %q; want empty", got)
	}
	r = ts.post(t, strings.Repeat("x", 1<<20), nil)
	wantJSONError(t, "POST of 1 MiB", r, http.StatusRequestEntityTooLarge)

	// Exactly 64 KiB, padded with every kind of JSON whitespace, is accepted.
	body := `{` + strings.Repeat(" \t\r\n", 1000) + `"userId":"big","name":"add_revenue","value":1}`
	body = pad(body, event.MaxLineBytes)
	if len(body) != 65536 {
		t.Fatalf("test body is %d bytes; want 65536", len(body))
	}
	wantOK(t, "POST of 65536 bytes", ts.post(t, body, nil))
	if got, want := ts.contents(t), canonical("big", event.AddRevenue, 1, ""); got != want {
		t.Errorf("events file = %q; want %q", got, want)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{})
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/liveEvent"},
		{http.MethodPut, "/liveEvent"},
		{http.MethodDelete, "/liveEvent"},
		{http.MethodPatch, "/liveEvent"},
		{http.MethodPost, "/userEvents/x"},
		{http.MethodPut, "/userEvents/x"},
		{http.MethodDelete, "/userEvents/x"},
		{http.MethodPost, "/healthz"},
		{http.MethodDelete, "/readyz"},
		{http.MethodPost, "/debug/vars"},
		{http.MethodPost, "/debug/pprof/"},
		{http.MethodPost, "/debug/pprof/profile"},
	} {
		r := ts.do(t, tt.method, tt.path, []byte(validEvent), map[string]string{"Authorization": testSecret})
		wantJSONError(t, tt.method+" "+tt.path, r, http.StatusMethodNotAllowed)
		wantAllow := "GET, HEAD"
		if tt.path == "/liveEvent" {
			wantAllow = "POST"
		}
		if got := r.header.Get("Allow"); got != wantAllow {
			t.Errorf("%s %s: Allow %q; want %q", tt.method, tt.path, got, wantAllow)
		}
	}
	wantJSONError(t, "GET /nope", ts.do(t, http.MethodGet, "/nope", nil, map[string]string{"Authorization": testSecret}), http.StatusNotFound)
	if got := ts.contents(t); got != "" {
		t.Errorf("events file after 405s = %q; want empty", got)
	}
}

// The server writes the canonical encoding of the event it decoded, never the raw body.
func TestCanonicalLine(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{})
	tests := []struct {
		body string
		want string
	}{
		{validEvent, canonical("user1", event.AddRevenue, 98, "")},
		{" { \"value\" : 98 ,\n\t\"name\" : \"add_revenue\" , \"userId\" : \"\\u0075ser1\" } \r\n",
			canonical("user1", event.AddRevenue, 98, "")},
		{`{"userId":"a\/b\"c\\d","name":"subtract_revenue","value":0}`,
			canonical(`a/b"c\d`, event.SubtractRevenue, 0, "")},
		{`{"userId":"\u00e9\u65e5\u672c","name":"add_revenue","value":9007199254740991}`,
			canonical("é日本", event.AddRevenue, event.MaxValue, "")},
		{`{"userId":"\ud83d\ude00","name":"add_\u0072evenue","value":7}`,
			canonical("😀", event.AddRevenue, 7, "")},
		{`{"userId":"` + strings.Repeat("z", 255) + `","name":"add_revenue","value":1}`,
			canonical(strings.Repeat("z", 255), event.AddRevenue, 1, "")},
		{"{\"userId\":\"raw é\",\"name\":\"add_revenue\",\"value\":1}\n",
			canonical("raw é", event.AddRevenue, 1, "")},
	}
	want := ""
	for _, tt := range tests {
		wantOK(t, fmt.Sprintf("POST %q", tt.body), ts.post(t, tt.body, nil))
		want += tt.want
		if got := ts.contents(t); got != want {
			t.Fatalf("after POST %q the events file = %q; want %q", tt.body, got, want)
		}
	}
	for i, l := range lines(want) {
		if _, err := event.ParseRecord([]byte(l)); err != nil {
			t.Errorf("line %d %q: ParseRecord = %v", i+1, l, err)
		}
	}
	if got := ts.m.accepted.Value(); got != float64(len(tests)) {
		t.Errorf("events_accepted = %v; want %d", got, len(tests))
	}
}

func TestUserEvents(t *testing.T) {
	t.Parallel()
	dsn := newDSN(t)
	ts := newTestServer(t, dsn, spool.Options{})
	users := map[string]int64{
		"user1":      27,
		"a/b":        1,
		"a/b/c":      2,
		"with space": -3,
		"é":          4,
		"日本":         5,
		`quo"te`:     6,
		"a+b":        7,
		"100%":       8,
		"a?b#c":      9,
		`back\slash`: 10,
		"zero":       0,
	}
	b := store.Batch{File: "seed"}
	for u, v := range users {
		b.Users = append(b.Users, u)
		b.Deltas = append(b.Deltas, v)
	}
	if _, err := ts.db.Apply(t.Context(), b); err != nil {
		t.Fatalf("seed: Apply = %v", err)
	}
	for u, want := range users {
		path := "/userEvents/" + url.PathEscape(u)
		r := ts.get(t, path)
		if r.status != http.StatusOK {
			t.Errorf("GET %s = %d %q; want 200", path, r.status, r.body)
			continue
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q; want application/json", path, ct)
		}
		var got struct {
			UserID  *string `json:"user_id"`
			Revenue *int64  `json:"revenue"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil || got.UserID == nil || got.Revenue == nil {
			t.Errorf("GET %s body %q: %v; want {\"user_id\":..., \"revenue\":...}", path, r.body, err)
			continue
		}
		if *got.UserID != u || *got.Revenue != want {
			t.Errorf("GET %s = {%q, %d}; want {%q, %d}", path, *got.UserID, *got.Revenue, u, want)
		}
	}
	// The exact shape of the example.
	if r := ts.get(t, "/userEvents/user1"); string(r.body) != "{\"user_id\":\"user1\",\"revenue\":27}\n" {
		t.Errorf("GET /userEvents/user1 body %q; want {\"user_id\":\"user1\",\"revenue\":27}", r.body)
	}

	for _, id := range []string{"nobody", "User1", "user1 ", "a%2Fb"} {
		path := "/userEvents/" + url.PathEscape(id)
		wantJSONError(t, "GET "+path, ts.get(t, path), http.StatusNotFound)
	}
	for _, path := range []string{
		"/userEvents/%FF",                              // not UTF-8
		"/userEvents/a%01b",                            // control character
		"/userEvents/a%7Fb",                            // DEL
		"/userEvents/" + strings.Repeat("a", 256),      // too long
		"/userEvents/" + strings.Repeat("%C3%A9", 128), // 256 bytes of UTF-8
	} {
		// No event can have such an id, so no row can: the user has no row.
		wantJSONError(t, "GET "+path, ts.get(t, path), http.StatusNotFound)
	}
	if got := ts.contents(t); got != "" {
		t.Errorf("events file after GETs = %q; want empty", got)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{})
	bad := []struct {
		name, key string
		direct    bool // send through the handler: a real client refuses this header
	}{
		{"256 bytes", strings.Repeat("k", 256), false},
		{"tab inside", "a\tb", false},
		{"non-ASCII", "clé", false},
		{"empty", "", false},
		{"control char", "a\x01b", true},
		{"DEL", "a\x7fb", true},
		{"newline", "a\nb", true},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.contents(t)
			hdr := map[string]string{"Idempotency-Key": tt.key}
			var r response
			if tt.direct {
				r = ts.serve(http.MethodPost, "/liveEvent", []byte(validEvent),
					map[string]string{"Authorization": testSecret, "Idempotency-Key": tt.key})
			} else {
				r = ts.post(t, validEvent, hdr)
			}
			wantJSONError(t, fmt.Sprintf("POST with Idempotency-Key %q", tt.key), r, http.StatusBadRequest)
			if after := ts.contents(t); after != before {
				t.Errorf("events file changed: %q -> %q", before, after)
			}
		})
	}

	// The longest key is fine, and is written with the event.
	long := strings.Repeat("K", 255)
	wantOK(t, "POST with a 255-byte key", ts.post(t, validEvent, map[string]string{"Idempotency-Key": long}))
	want := canonical("user1", event.AddRevenue, 98, long)

	// Same key, same event: the original success, nothing written.
	key := map[string]string{"Idempotency-Key": `k-1 "quoted" \ slash`}
	wantOK(t, "first POST with key k-1", ts.post(t, validEvent, key))
	want += canonical("user1", event.AddRevenue, 98, `k-1 "quoted" \ slash`)
	if got := ts.contents(t); got != want {
		t.Fatalf("events file = %q; want %q", got, want)
	}
	for i, body := range []string{validEvent, " {\"value\":98,\"userId\":\"\\u0075ser1\",\"name\":\"add_revenue\"}\n"} {
		r := ts.post(t, body, key)
		wantOK(t, fmt.Sprintf("repeat %d with key k-1", i+1), r)
		if got := r.header.Get("Idempotent-Replayed"); got != "true" {
			t.Errorf("repeat %d: Idempotent-Replayed = %q; want true", i+1, got)
		}
	}
	if got := ts.contents(t); got != want {
		t.Errorf("events file after replays = %q; want the line once: %q", got, want)
	}
	if got := ts.m.replayed.Value(); got != 2 {
		t.Errorf("events_replayed = %v; want 2", got)
	}

	// Same key, different event: 422.
	for _, body := range []string{
		`{"userId":"user1","name":"add_revenue","value":99}`,
		`{"userId":"user2","name":"add_revenue","value":98}`,
		`{"userId":"user1","name":"subtract_revenue","value":98}`,
	} {
		r := ts.post(t, body, key)
		wantJSONError(t, "POST of another event with key k-1", r, http.StatusUnprocessableEntity)
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("422 carries Idempotent-Replayed")
		}
	}
	if got := ts.contents(t); got != want {
		t.Errorf("events file after 422s = %q; want %q", got, want)
	}

	// A first response is not marked as replayed; a request without a key is never deduplicated.
	r := ts.post(t, validEvent, map[string]string{"Idempotency-Key": "k-2"})
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first POST with k-2 carries Idempotent-Replayed: %q", r.header.Get("Idempotent-Replayed"))
	}
	wantOK(t, "no key 1", ts.post(t, validEvent, nil))
	wantOK(t, "no key 2", ts.post(t, validEvent, nil))
	want += canonical("user1", event.AddRevenue, 98, "k-2") + canonical("user1", event.AddRevenue, 98, "") + canonical("user1", event.AddRevenue, 98, "")
	if got := ts.contents(t); got != want {
		t.Errorf("events file = %q; want %q", got, want)
	}
}

// While the first request with a key is being written, a second gets 409 and Retry-After.
func TestIdempotencyInFlight(t *testing.T) {
	t.Parallel()
	g := newGateFS()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{FS: g})
	defer g.open()
	g.hold.Store(true)
	key := map[string]string{"Idempotency-Key": "slow"}
	first := make(chan response, 1)
	go func() { first <- ts.post(t, validEvent, key) }()
	<-g.entered // the first request's line is being synced

	for _, body := range []string{validEvent, `{"userId":"other","name":"add_revenue","value":1}`} {
		r := ts.post(t, body, key)
		wantJSONError(t, "POST while the key is in flight", r, http.StatusConflict)
		if r.header.Get("Retry-After") == "" {
			t.Errorf("409 without Retry-After")
		}
	}
	g.open()
	wantOK(t, "the first request", <-first)
	r := ts.post(t, validEvent, key)
	wantOK(t, "retry after the first finished", r)
	if r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry after the first finished: Idempotent-Replayed = %q; want true", r.header.Get("Idempotent-Replayed"))
	}
	if got, want := ts.contents(t), canonical("user1", event.AddRevenue, 98, "slow"); got != want {
		t.Errorf("events file = %q; want %q", got, want)
	}
}

// A full queue sheds load with 503 and Retry-After, and writes nothing for the shed event.
func TestQueueFull(t *testing.T) {
	t.Parallel()
	g := newGateFS()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{FS: g, QueueSize: 1})
	defer g.open()
	g.hold.Store(true)
	results := make(chan response, 2)
	go func() { results <- ts.post(t, `{"userId":"a","name":"add_revenue","value":1}`, nil) }()
	<-g.entered // a is being written
	go func() { results <- ts.post(t, `{"userId":"b","name":"add_revenue","value":2}`, nil) }()
	testenv.WaitFor(t, "b to be queued", func() bool { return ts.w.Stats().QueueDepth == 1 })

	r := ts.post(t, `{"userId":"c","name":"add_revenue","value":3}`, map[string]string{"Idempotency-Key": "c"})
	wantJSONError(t, "POST with a full queue", r, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	g.open()
	for i := 0; i < 2; i++ {
		wantOK(t, "queued request", <-results)
	}
	want := canonical("a", event.AddRevenue, 1, "") + canonical("b", event.AddRevenue, 2, "")
	if got := ts.contents(t); got != want {
		t.Errorf("events file = %q; want %q", got, want)
	}
	// The shed key was forgotten: its retry is written.
	wantOK(t, "retry of c", ts.post(t, `{"userId":"c","name":"add_revenue","value":3}`, map[string]string{"Idempotency-Key": "c"}))
	want += canonical("c", event.AddRevenue, 3, "c")
	if got := ts.contents(t); got != want {
		t.Errorf("events file = %q; want %q", got, want)
	}
}

// A failed write answers 500 without a line in the file, and forgets the key so that the
// retry is written.
func TestWriteFailure(t *testing.T) {
	t.Parallel()
	g := newGateFS()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{FS: g})
	key := map[string]string{"Idempotency-Key": "k"}
	g.failNext.Store(true)
	r := ts.post(t, validEvent, key)
	msg := wantJSONError(t, "POST whose sync fails", r, http.StatusInternalServerError)
	if strings.Contains(msg, "injected") {
		t.Errorf("500 body %q leaks the internal error", msg)
	}
	if got := ts.contents(t); got != "" {
		t.Errorf("events file after a failed write = %q; want empty", got)
	}
	r = ts.post(t, validEvent, key)
	wantOK(t, "retry", r)
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("retry after a failure was answered as a replay")
	}
	if got, want := ts.contents(t), canonical("user1", event.AddRevenue, 98, "k"); got != want {
		t.Errorf("events file = %q; want %q", got, want)
	}
}

// When a failed write cannot even be undone, the writer refuses every append, and /readyz
// says the events file is the problem.
func TestBrokenWriter(t *testing.T) {
	t.Parallel()
	g := newGateFS()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{FS: g})
	g.failNext.Store(true)
	g.failTruncate.Store(true)
	wantJSONError(t, "POST whose write cannot be undone", ts.post(t, validEvent, nil), http.StatusInternalServerError)
	wantJSONError(t, "POST to a broken writer", ts.post(t, validEvent, map[string]string{"Idempotency-Key": "k"}), http.StatusInternalServerError)
	r := ts.do(t, http.MethodGet, "/readyz", nil, nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "events file") || !strings.Contains(string(r.body), "restart") {
		t.Errorf("GET /readyz with a broken writer = %d %q; want 503 naming the events file and a restart", r.status, r.body)
	}
	if r := ts.do(t, http.MethodGet, "/healthz", nil, nil); r.status != http.StatusOK {
		t.Errorf("GET /healthz = %d; want 200", r.status)
	}
	if ts.keys.Len() != 0 {
		t.Errorf("the window holds %d keys after failed writes; want 0", ts.keys.Len())
	}
}

func TestConcurrentPosts(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{})
	const workers, each = 64, 100
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// Varying lengths, escapes and keys, to catch torn or interleaved lines.
				user := fmt.Sprintf(`u%d-%d-%s"\`, g, i, strings.Repeat("x", (g*7+i)%40))
				body := string(event.AppendJSON(nil, event.Record{Event: event.Event{UserID: user, Name: event.AddRevenue, Value: int64(g*each + i)}}))
				hdr := map[string]string{"Authorization": testSecret}
				if i%2 == 0 {
					hdr["Idempotency-Key"] = fmt.Sprintf("key-%d-%d", g, i)
				}
				req, _ := http.NewRequest(http.MethodPost, ts.srv.URL+"/liveEvent", strings.NewReader(body))
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, err := ts.client.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Sprintf("POST %s: %d", body, resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	got := lines(ts.contents(t))
	if len(got) != workers*each {
		t.Fatalf("events file has %d lines; want %d", len(got), workers*each)
	}
	seen := make(map[int64]bool)
	for i, l := range got {
		r, err := event.ParseRecord([]byte(l))
		if err != nil {
			t.Fatalf("line %d %q: ParseRecord = %v", i+1, l, err)
		}
		if seen[r.Value] {
			t.Errorf("value %d written twice", r.Value)
		}
		seen[r.Value] = true
		g, n := int(r.Value)/each, int(r.Value)%each
		if want := fmt.Sprintf(`u%d-%d-%s"\`, g, n, strings.Repeat("x", (g*7+n)%40)); r.UserID != want {
			t.Errorf("line %d: userId %q with value %d; want %q", i+1, r.UserID, r.Value, want)
		}
		if wantKey := n%2 == 0; wantKey != (r.Key != "") {
			t.Errorf("line %d: key %q for request %d/%d", i+1, r.Key, g, n)
		}
	}
	if got := ts.m.accepted.Value(); got != workers*each {
		t.Errorf("events_accepted = %v; want %d", got, workers*each)
	}
}

func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, pgtest.UnreachableDSN, spool.Options{})
	wantOK(t, "POST with PostgreSQL down", ts.post(t, validEvent, nil))
	if got, want := ts.contents(t), canonical("user1", event.AddRevenue, 98, ""); got != want {
		t.Errorf("events file = %q; want %q", got, want)
	}
	r := ts.get(t, "/userEvents/user1")
	msg := wantJSONError(t, "GET with PostgreSQL down", r, http.StatusServiceUnavailable)
	if strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "dial") {
		t.Errorf("503 body %q leaks the connection error", msg)
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	r = ts.do(t, http.MethodGet, "/readyz", nil, nil)
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with PostgreSQL down = %d %q; want 503", r.status, r.body)
	}
	var ready struct {
		Status   string   `json:"status"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal(r.body, &ready); err != nil || len(ready.Problems) == 0 || !strings.Contains(strings.Join(ready.Problems, ";"), "database") {
		t.Errorf("GET /readyz body %q (%v); want problems naming the database", r.body, err)
	}
	if r := ts.do(t, http.MethodGet, "/healthz", nil, nil); r.status != http.StatusOK {
		t.Errorf("GET /healthz with PostgreSQL down = %d; want 200", r.status)
	}
	// Still accepting after the failures.
	wantOK(t, "second POST with PostgreSQL down", ts.post(t, validEvent, map[string]string{"Idempotency-Key": "k"}))
	if n := len(lines(ts.contents(t))); n != 2 {
		t.Errorf("events file has %d lines; want 2", n)
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, newDSN(t), spool.Options{})
	for _, path := range []string{"/healthz", "/readyz"} {
		r := ts.do(t, http.MethodGet, path, nil, nil) // no Authorization
		if r.status != http.StatusOK {
			t.Errorf("GET %s without Authorization = %d %q; want 200", path, r.status, r.body)
		}
		var v map[string]any
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Errorf("GET %s body %q: %v", path, r.body, err)
		}
	}
}

func TestDebugVars(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, newDSN(t), spool.Options{})
	scrape := ts.metrics(t) // every family there before any traffic
	for _, name := range []string{
		"finonex_events_accepted_total", "finonex_events_replayed_total", "finonex_events_rejected_total",
		"finonex_http_requests_total", "finonex_http_request_duration_seconds", "finonex_writer_batches_total",
		"finonex_writer_batch_events", "finonex_writer_fdatasync_seconds", "finonex_writer_queue_depth",
		"finonex_idempotency_keys", "finonex_revenue_query_errors_total", "finonex_postgres_up",
		"finonex_revenue_lookups_total", "finonex_revenue_queries_total", "finonex_revenue_query_users_total",
	} {
		if scrape[name] == nil {
			t.Errorf("GET /metrics has no family %s", name)
		}
	}
	wantOK(t, "POST", ts.post(t, validEvent, nil))
	wantOK(t, "POST with key", ts.post(t, validEvent, map[string]string{"Idempotency-Key": "k"}))
	ts.post(t, validEvent, map[string]string{"Idempotency-Key": "k"})
	ts.post(t, `{"userId":"x"}`, nil)
	ts.post(t, strings.Repeat(" ", 70000), nil)
	ts.get(t, "/userEvents/nobody")

	r := ts.get(t, "/debug/vars")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /debug/vars = %d %q; want 200 JSON", r.status, r.header.Get("Content-Type"))
	}
	var vars struct {
		Accepted        *int64           `json:"events_accepted"`
		Replayed        int64            `json:"events_replayed"`
		Rejected        map[string]int64 `json:"events_rejected"`
		IdempotencyKeys int64            `json:"idempotency_keys"`
		Writer          map[string]any   `json:"writer"`
		Reads           map[string]any   `json:"reads"`
	}
	if err := json.Unmarshal(r.body, &vars); err != nil {
		t.Fatalf("GET /debug/vars body %q: %v", r.body, err)
	}
	if vars.Accepted == nil || *vars.Accepted != 2 {
		t.Errorf("events_accepted in %s; want 2", r.body)
	}
	if vars.Replayed != 1 || vars.Rejected["invalid_event"] != 1 || vars.Rejected["too_large"] != 1 || vars.IdempotencyKeys != 1 {
		t.Errorf("GET /debug/vars = %s; want 1 replayed, 1 invalid_event, 1 too_large, 1 key", r.body)
	}
	if lines, _ := vars.Writer["lines"].(float64); lines != 2 {
		t.Errorf("writer.lines in %s; want 2", r.body)
	}
	if q, _ := vars.Reads["queries"].(float64); q != 1 {
		t.Errorf("reads.queries in %s; want 1", r.body)
	}

	fams := ts.metrics(t)
	for _, tc := range []struct {
		family, sample string
		labels         []string
		want           float64
	}{
		{"finonex_events_accepted_total", "", nil, 2},
		{"finonex_events_replayed_total", "", nil, 1},
		{"finonex_events_rejected_total", "", []string{"reason", "invalid_event"}, 1},
		{"finonex_events_rejected_total", "", []string{"reason", "too_large"}, 1},
		{"finonex_http_requests_total", "", []string{"route", "POST /liveEvent", "code", "200"}, 3},
		{"finonex_http_requests_total", "", []string{"route", "GET /userEvents/{userid}", "code", "404"}, 1},
		{"finonex_http_refused_total", "", []string{"route", "GET /userEvents/{userid}", "reason", "not_found"}, 1},
		{"finonex_http_request_duration_seconds", "finonex_http_request_duration_seconds_count", []string{"route", "POST /liveEvent"}, 5},
		{"finonex_writer_batches_total", "", nil, 2},
		{"finonex_writer_batch_events", "finonex_writer_batch_events_sum", nil, 2},
		{"finonex_writer_fdatasync_seconds", "finonex_writer_fdatasync_seconds_count", nil, 2},
		{"finonex_idempotency_keys", "", nil, 1},
		{"finonex_postgres_up", "", nil, 1},
		{"finonex_revenue_lookups_total", "", nil, 1},
		{"finonex_revenue_queries_total", "", nil, 1},
		{"finonex_revenue_query_users_total", "", nil, 1},
	} {
		sample := tc.sample
		if sample == "" {
			sample = tc.family
		}
		if got, ok := fams[tc.family].Sample(sample, tc.labels...); !ok || got != tc.want {
			t.Errorf("GET /metrics: %s%v = %v (found %v); want %v", sample, tc.labels, got, ok, tc.want)
		}
	}
}

// TestMetricsHoldNoData: no user id, event value or secret ever appears on /metrics.
func TestMetricsHoldNoData(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, newDSN(t), spool.Options{})
	ts.post(t, `{"userId":"secret-user-7","name":"add_revenue","value":424242}`, nil)
	ts.get(t, "/userEvents/secret-user-7")
	ts.do(t, http.MethodGet, "/metrics", nil, map[string]string{"Authorization": "wrong-secret-99"})
	r := ts.get(t, "/metrics")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != prom.ContentType {
		t.Fatalf("GET /metrics = %d %q; want 200 %q", r.status, r.header.Get("Content-Type"), prom.ContentType)
	}
	for _, leak := range []string{"secret-user-7", "424242", testSecret, "wrong-secret-99"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("GET /metrics holds %q:\n%s", leak, r.body)
		}
	}
}

// The server creates its database when it is missing, on the first request that needs it.
func TestCreatesDatabase(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, os.Getenv, false)
	ts := newTestServer(t, dsn, spool.Options{})
	wantJSONError(t, "GET in a new database", ts.get(t, "/userEvents/nobody"), http.StatusNotFound)
	if r := ts.do(t, http.MethodGet, "/readyz", nil, nil); r.status != http.StatusOK {
		t.Errorf("GET /readyz = %d %q; want 200", r.status, r.body)
	}
}
