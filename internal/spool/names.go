package spool

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The naming scheme, in one place. A live file dir/STEM.EXT (EXT is filepath.Ext of the live
// name, possibly empty) becomes, in turn:
//
//	dir/STEM_<time>-<random>.EXT            claimed: taken away from the writers by Claim
//	dir/STEM_<time>-<random>_processed.EXT  processed: applied, never to be applied again
//	dir/STEM_<time>-<random>_rejected.EXT   the claimed file's invalid lines, set aside
//	dir/STEM_<time>-<random>_duplicate.EXT  refused: its bytes were applied before, as another file
//
// <time> is the claim time in UTC, 20060102T150405.000000000Z, so claimed names sort by time;
// <random> is 8 hex digits that keep two claims of the same instant apart. The claim time
// holds a dot, so filepath.Ext cannot be trusted on a claimed name: ParseName reads names
// from the claim part outwards, and every other package asks it.
//
// Names are read so that a file renamed by hand is never taken for a live one: a name that
// holds a claim part anywhere, or _processed, _rejected or _duplicate (in any case) before a
// non-word byte or at its end, is not live, and is never claimed or applied. Such a file is a
// processed one copied ("..._processed (1).jsonl", "..._processed.jsonl.bak") or a claimed one
// renamed ("..._<time>-<random>.jsonl.bak").
const claimTime = "20060102T150405.000000000Z"

// claimPart matches what ClaimName adds to a live name.
const claimPart = `_\d{8}T\d{6}\.\d{9}Z-[0-9a-f]{8}`

// claimedName splits a claimed, processed or rejected base name into the live stem, the claim
// part, the _processed or _rejected suffix (possibly empty) and the live extension.
var claimedName = regexp.MustCompile(`^(.*)(` + claimPart + `)(_processed|_rejected|_duplicate)?(\.[^.]*)?$`)

// handMade matches a _processed, _rejected or _duplicate part before a non-word byte or at the
// end, in any case: such a file renamed by hand (its claim part dropped, a copy number or an
// extension added).
var handMade = regexp.MustCompile(`(?i)_(processed|rejected|duplicate)(?:[^a-z0-9_]|$)`)

// anyClaim matches a claim part anywhere in a name.
var anyClaim = regexp.MustCompile(claimPart)

// Kind says what part a file plays in the handoff.
type Kind int

const (
	Live      Kind = iota // a file writers append to, or one a user hands to the processor
	Claimed               // renamed away from its writers, not yet applied
	Processed             // applied: never applied again
	Rejected              // the invalid lines of a claimed file
	Duplicate             // refused: its bytes were applied before under another name
	Renamed               // a claimed file renamed by hand: never claimed or applied
)

func (k Kind) String() string {
	switch k {
	case Claimed:
		return "claimed"
	case Processed:
		return "processed"
	case Rejected:
		return "rejected"
	case Duplicate:
		return "duplicate"
	case Renamed:
		return "renamed"
	}
	return "live"
}

// Name is a path read by the naming scheme.
type Name struct {
	Path string
	Kind Kind
	// Live is the path of the live file this one was claimed from; for a Live file, Path
	// itself. It is "" for a _processed or _rejected name without a claim part, whose live
	// file cannot be told.
	Live string
	// Claimed is the claimed file's path, for Claimed, Processed and Rejected names that
	// carry a claim part: what the ledger knows the file by (its base name).
	Claimed string
}

// ParseName reads path by the naming scheme. Only the base name is read: a claim part in a
// directory's name means nothing.
func ParseName(path string) Name {
	dir, base := filepath.Split(path)
	if m := claimedName.FindStringSubmatch(base); m != nil {
		stem, claim, suffix, ext := m[1], m[2], m[3], m[4]
		n := Name{Path: path, Kind: Claimed, Live: dir + stem + ext, Claimed: dir + stem + claim + ext}
		switch suffix {
		case "_processed":
			n.Kind = Processed
		case "_rejected":
			n.Kind = Rejected
		case "_duplicate":
			n.Kind = Duplicate
		}
		return n
	}
	if m := handMade.FindStringSubmatch(base); m != nil {
		switch strings.ToLower(m[1]) {
		case "processed":
			return Name{Path: path, Kind: Processed}
		case "rejected":
			return Name{Path: path, Kind: Rejected}
		}
		return Name{Path: path, Kind: Duplicate}
	}
	if anyClaim.MatchString(base) {
		return Name{Path: path, Kind: Renamed}
	}
	return Name{Path: path, Kind: Live, Live: path}
}

// CheckLive returns an error saying why path cannot be a live file: one the server appends
// to and the processor claims. A claimed, processed, rejected, duplicate or renamed name is
// not one.
func CheckLive(path string) error {
	n := ParseName(path)
	switch n.Kind {
	case Live:
		return nil
	case Claimed:
		return fmt.Errorf("%s is named like a claimed file (NAME_<time>-<random>): a live file must not look like one", path)
	case Processed:
		return fmt.Errorf("%s is named like a processed file (_processed): already processed, and never applied again; to apply its events again on purpose, copy the lines to a file with a new name", path)
	case Rejected:
		return fmt.Errorf("%s is named like a rejected-lines file (_rejected): to apply those lines, fix them and put them in a file with a new name", path)
	case Duplicate:
		return fmt.Errorf("%s is named like a duplicate file (_duplicate): its bytes were applied already as another file, and are never applied again", path)
	}
	return fmt.Errorf("%s is named like a claimed file renamed by hand (it holds a claim part, _<time>-<random>): it may have been applied already, so it is never claimed; to apply its events on purpose, copy the lines to a file with a new name", path)
}

// ClaimName returns a new, unique name to claim the live file at path under.
func ClaimName(path string, now time.Time) (string, error) {
	if err := CheckLive(path); err != nil {
		return "", err
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	return dir + strings.TrimSuffix(base, ext) + "_" + now.UTC().Format(claimTime) + "-" + hex.EncodeToString(b[:]) + ext, nil
}

// IsClaimed reports whether path is a claimed file: named by Claim, not yet processed.
func IsClaimed(path string) bool { return ParseName(path).Kind == Claimed }

// ProcessedName is the name a claimed file gets once it has been applied.
func ProcessedName(claimed string) string { return withSuffix(claimed, "_processed") }

// RejectedName is the name of the file that holds a claimed file's invalid lines.
func RejectedName(claimed string) string { return withSuffix(claimed, "_rejected") }

// DuplicateName is the name a claimed file gets when its bytes were applied before.
func DuplicateName(claimed string) string { return withSuffix(claimed, "_duplicate") }

// withSuffix puts suffix right after the claim part of a claimed name, before the extension.
// Any other name gets it before its extension.
func withSuffix(claimed, suffix string) string {
	n := ParseName(claimed)
	if n.Claimed == "" {
		ext := filepath.Ext(claimed)
		return strings.TrimSuffix(claimed, ext) + suffix + ext
	}
	ext := filepath.Ext(filepath.Base(n.Live))
	return strings.TrimSuffix(n.Claimed, ext) + suffix + ext
}

// family is what the names in a live file's directory are compared with: the directory and
// the live file's cleaned path, worked out once for a whole listing.
type family struct{ dir, live string }

func familyOf(live string) family {
	dir := filepath.Dir(live)
	return family{dir: dir, live: filepath.Join(dir, filepath.Base(live))}
}

// has reports whether the file named name in the directory is the live file or was claimed
// from it, and is of one of the kinds.
func (f family) has(name string, kinds ...Kind) bool {
	n := ParseName(filepath.Join(f.dir, name))
	return n.Live == f.live && slices.Contains(kinds, n.Kind)
}
