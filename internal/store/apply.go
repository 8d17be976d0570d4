package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// Batch is one events file's effect: its ledger entry and the revenue delta of every user.
type Batch struct {
	File   string   // the claimed file's base name: the ledger key
	Events int64    // valid events summed into Deltas
	SHA256 string   // hex digest of the file's bytes
	Users  []string // distinct users, in any order
	Deltas []int64  // Deltas[i] is the revenue change of Users[i]

	// Unique refuses the batch, with a *SameContentError, when the ledger already holds a
	// file with the same digest that applied events: for a file a user hands over, the same
	// bytes under a new name are a processed file renamed by hand. The server's live files
	// are not Unique: two claims of it may hold the very same lines (a canary posting one
	// event every interval), and both count.
	Unique bool

	// BeforeCommit, when set, runs inside the transaction just before COMMIT. It exists for
	// fault-injection tests that kill the process at that point.
	BeforeCommit func()

	// OnRetry, when set, is called before the transaction is tried again after a deadlock
	// or a serialization failure, for metrics.
	OnRetry func()
}

// chunkRows is how many users one upsert statement carries. Large enough that round trips
// do not dominate, small enough that one statement's arrays stay a few MB.
const chunkRows = 20000

// upsert adds each user's delta to the stored revenue. bigint arithmetic raises an error
// instead of wrapping, so an overflowing total fails the whole transaction.
const upsert = `INSERT INTO users_revenue (user_id, revenue)
SELECT * FROM unnest($1::text[], $2::bigint[])
ON CONFLICT (user_id) DO UPDATE SET revenue = users_revenue.revenue + EXCLUDED.revenue`

// Apply adds b's sums to users_revenue and records b.File in the ledger, in one transaction.
// It returns false, changing nothing, when the ledger already holds b.File. Deadlocks and
// serialization failures are retried with backoff; any other error leaves the database as
// it was.
func (s *Store) Apply(ctx context.Context, b Batch) (applied bool, err error) {
	if err := s.Ensure(ctx); err != nil {
		return false, err
	}
	if len(b.Users) != len(b.Deltas) {
		return false, fmt.Errorf("batch %s: %d users but %d deltas", b.File, len(b.Users), len(b.Deltas))
	}
	// One lock order for every processor: sort users, deltas alongside.
	order := make([]int, len(b.Users))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return strings.Compare(b.Users[i], b.Users[j]) })
	users := make([]string, len(order))
	deltas := make([]int64, len(order))
	net := new(big.Int)
	for k, i := range order {
		users[k], deltas[k] = b.Users[i], b.Deltas[i]
		net.Add(net, big.NewInt(deltas[k]))
	}
	for attempt := 1; ; attempt++ {
		applied, err = s.apply(ctx, b, users, deltas, net.String())
		if err == nil || !retryable(err) || attempt == 8 {
			return applied, err
		}
		if b.OnRetry != nil {
			b.OnRetry()
		}
		backoff := time.Duration(10<<attempt)*time.Millisecond + rand.N(20*time.Millisecond)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (s *Store) apply(ctx context.Context, b Batch, users []string, deltas []int64, net string) (applied bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO processed_files (file_name, events, users, net_revenue, sha256)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (file_name) DO NOTHING`, b.File, b.Events, len(users), net, b.SHA256)
		if err != nil {
			return fmt.Errorf("record %s in ledger: %w", b.File, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("record %s in ledger: %w", b.File, err)
		}
		if n == 0 {
			return errAlreadyApplied
		}
		if b.Unique && b.Events > 0 {
			if err := refuseSameContent(ctx, tx, b); err != nil {
				return err
			}
		}
		for i := 0; i < len(users); i += chunkRows {
			j := min(i+chunkRows, len(users))
			if _, err := tx.ExecContext(ctx, upsert, pq.Array(users[i:j]), pq.Array(deltas[i:j])); err != nil {
				return fmt.Errorf("add revenue of %s: %w", b.File, err)
			}
		}
		if b.BeforeCommit != nil {
			b.BeforeCommit()
		}
		return nil
	})
	if errors.Is(err, errAlreadyApplied) {
		return false, nil
	}
	return err == nil, err
}

// SameContentError says that a Unique batch's bytes were applied before, under another name.
type SameContentError struct {
	File      string // the ledger's name for the earlier file
	AppliedAt time.Time
}

func (e *SameContentError) Error() string {
	return fmt.Sprintf("the same content (SHA-256) was applied already as %s at %s", e.File, e.AppliedAt.UTC().Format(time.RFC3339))
}

// refuseSameContent looks for another ledger row with b's digest. The advisory lock, taken
// per digest, orders two transactions with the same content: the second one's query starts
// after the first committed, and sees its row.
func refuseSameContent(ctx context.Context, tx *sql.Tx, b Batch) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(734509, hashtext($1))`, b.SHA256); err != nil {
		return fmt.Errorf("lock digest of %s: %w", b.File, err)
	}
	e := &SameContentError{}
	err := tx.QueryRowContext(ctx, `SELECT file_name, applied_at FROM processed_files
WHERE sha256 = $1 AND file_name <> $2 AND events > 0 ORDER BY applied_at LIMIT 1`, b.SHA256, b.File).Scan(&e.File, &e.AppliedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up digest of %s: %w", b.File, err)
	}
	return e
}

// errAlreadyApplied rolls back a transaction whose file the ledger already holds.
var errAlreadyApplied = errors.New("already applied")

// Applied reports whether the ledger holds file, and the digest it was applied with.
func (s *Store) Applied(ctx context.Context, file string) (bool, string, error) {
	if err := s.Ensure(ctx); err != nil {
		return false, "", err
	}
	var digest string
	err := s.db.QueryRowContext(ctx, `SELECT sha256 FROM processed_files WHERE file_name = $1`, file).Scan(&digest)
	if errors.Is(err, sql.ErrNoRows) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("look up %s in ledger: %w", file, err)
	}
	return true, digest, nil
}

func retryable(err error) bool {
	switch sqlState(err) {
	case pqerror.TRDeadlockDetected, pqerror.TRSerializationFailure:
		return true
	}
	return false
}
