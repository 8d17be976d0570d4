package main

import (
	"net/http"

	"finonex/internal/auth"
)

// allowed decides, from a request's grant, whether it may go on.
type allowed func(g auth.Grant, r *http.Request) bool

// scope allows requests whose grant has the scope.
func scope(s string) allowed { return func(g auth.Grant, _ *http.Request) bool { return g.Has(s) } }

// readsUser allows reading any user's revenue, or only the user the token was issued to.
func readsUser(g auth.Grant, r *http.Request) bool {
	return g.Has(auth.RevenueRead) || g.Has(auth.RevenueReadOwn) && g.Subject() == r.PathValue("userid")
}

// require lets a request through to next only when its credentials are good (else 401) and
// allow it (else 403). Neither refusal reads the body or touches any data.
func require(creds *auth.Credentials, errs *errorWriter, ok allowed, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ref := creds.Allow(r, ok); ref != nil {
			errs.write(w, r, &apiError{status: ref.Status, reason: ref.Reason, msg: ref.Msg, challenge: ref.Challenge})
			return
		}
		next.ServeHTTP(w, r)
	})
}
