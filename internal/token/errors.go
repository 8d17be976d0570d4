package token

import "errors"

// ErrInvalid is what every refused token's error satisfies with errors.Is: the HTTP layer
// answers it with 401 and needs to know nothing else.
var ErrInvalid = errors.New("invalid token")

// Error is why a token was refused. Reason is a short fixed phrase such as "expired" or
// "bad signature", chosen from a closed list, so it is safe to log, to count by as a
// metric label and to show the client: it never holds any part of the token, not even a
// header value, since the token is attacker-supplied and may itself be a secret.
type Error struct {
	Reason string
}

func (e Error) Error() string { return "token: " + e.Reason }

// Is reports that every Error is an ErrInvalid.
func (e Error) Is(target error) bool { return target == ErrInvalid }

// The reasons, in the order Verify checks them.
var (
	errNoKeys = Error{"no token keys configured"}

	errTooLarge    = Error{"too large"}
	errSegments    = Error{"not three segments"}
	errBase64      = Error{"bad base64url"}
	errHeader      = Error{"bad header"}
	errCrit        = Error{"crit header not supported"}
	errHeaderJWK   = Error{"jwk header not allowed"}
	errHeaderJKU   = Error{"jku header not allowed"}
	errHeaderX5U   = Error{"x5u header not allowed"}
	errHeaderX5C   = Error{"x5c header not allowed"}
	errTyp         = Error{"bad typ"}
	errAlg         = Error{"unsupported alg"}
	errMissingKID  = Error{"missing kid"}
	errBadKID      = Error{"bad kid"}
	errUnknownKID  = Error{"unknown kid"}
	errAlgMismatch = Error{"alg does not match kid"}
	errSignature   = Error{"bad signature"}

	errPayload     = Error{"bad payload"}
	errMissingExp  = Error{"missing exp"}
	errBadExp      = Error{"bad exp"}
	errBadNbf      = Error{"bad nbf"}
	errBadIat      = Error{"bad iat"}
	errExpired     = Error{"expired"}
	errNotYetValid = Error{"not yet valid"}
	errIatFuture   = Error{"issued in the future"}
	errBadIss      = Error{"bad iss"}
	errMissingIss  = Error{"missing iss"}
	errWrongIssuer = Error{"wrong issuer"}
	errMissingAud  = Error{"missing aud"}
	errBadAud      = Error{"bad aud"}
	errWrongAud    = Error{"wrong audience"}
	errMissingSub  = Error{"missing sub"}
	errBadSub      = Error{"bad sub"}
	errBadScope    = Error{"bad scope"}
)
