package token

import (
	"slices"
	"strings"
	"time"
)

// Claims are what a verified token says about its bearer.
type Claims struct {
	Subject   string    // sub: who the token was issued to; never empty
	Scopes    []string  // scope, split at spaces; empty when the token has none
	Expires   time.Time // exp
	NotBefore time.Time // nbf; zero when absent
	IssuedAt  time.Time // iat; zero when absent
}

// Has reports whether scope is one of the token's scopes. Scopes are compared whole and
// exactly: revenue:readx does not grant revenue:read, nor REVENUE:READ.
func (c Claims) Has(scope string) bool {
	return scope != "" && slices.Contains(c.Scopes, scope)
}

func (c Claims) clone() Claims {
	c.Scopes = slices.Clone(c.Scopes)
	return c
}

// checkClaims decodes and checks the payload of a token whose signature has been verified.
func (v *Verifier) checkClaims(payload []byte, now time.Time) (Claims, error) {
	p, ok := parseObject(payload)
	if !ok {
		return Claims{}, errPayload
	}
	var c Claims
	var present bool
	if c.Expires, present, ok = p.date("exp"); !present {
		return Claims{}, errMissingExp
	} else if !ok {
		return Claims{}, errBadExp
	}
	if c.NotBefore, present, ok = p.date("nbf"); present && !ok {
		return Claims{}, errBadNbf
	}
	if c.IssuedAt, present, ok = p.date("iat"); present && !ok {
		return Claims{}, errBadIat
	}
	if err := v.checkTimes(c, now); err != nil {
		return Claims{}, err
	}

	iss, present, ok := p.str("iss")
	switch {
	case present && !ok:
		return Claims{}, errBadIss
	case v.cfg.Issuer != "" && !present:
		return Claims{}, errMissingIss
	case v.cfg.Issuer != "" && iss != v.cfg.Issuer:
		return Claims{}, errWrongIssuer
	}

	if err := checkAudience(p, v.cfg.Audience); err != nil {
		return Claims{}, err
	}

	sub, present, ok := p.str("sub")
	switch {
	case !present:
		return Claims{}, errMissingSub
	case !ok || sub == "":
		return Claims{}, errBadSub
	}
	c.Subject = sub

	// scope is one string of space-separated scopes (RFC 8693 §4.2, RFC 9068 §2.2.3).
	// It is split at single spaces only and empty pieces dropped; a piece holding any
	// other byte, a tab say, stays one scope that matches nothing.
	scope, present, ok := p.str("scope")
	if present && !ok {
		return Claims{}, errBadScope
	}
	for s := range strings.SplitSeq(scope, " ") {
		if s != "" {
			c.Scopes = append(c.Scopes, s)
		}
	}
	return c, nil
}

// checkTimes checks exp, nbf and iat against now. It runs on every Verify, cached or
// not: a token remembered while good must still be refused once it has expired.
func (v *Verifier) checkTimes(c Claims, now time.Time) error {
	leeway := v.cfg.Leeway
	if !now.Before(c.Expires.Add(leeway)) {
		return errExpired
	}
	late := now.Add(leeway)
	if !c.NotBefore.IsZero() && late.Before(c.NotBefore) {
		return errNotYetValid
	}
	if !c.IssuedAt.IsZero() && late.Before(c.IssuedAt) {
		return errIatFuture
	}
	return nil
}

// checkAudience checks that aud is want, or an array of strings one of which is want
// (RFC 7519 §4.1.3). An array with anything but strings in it is refused whole.
func checkAudience(p object, want string) error {
	raw, present := p["aud"]
	if !present {
		return errMissingAud
	}
	if s, _, ok := rawString(raw); ok {
		if s != want {
			return errWrongAud
		}
		return nil
	}
	auds, ok := stringArray(raw)
	if !ok {
		return errBadAud
	}
	if !slices.Contains(auds, want) {
		return errWrongAud
	}
	return nil
}
