package benchstat

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DBCounters is one reading of a database's cumulative work counters, to
// subtract from a later one (Sub).
type DBCounters struct {
	// Xacts is the database's committed and rolled-back transactions
	// (pg_stat_database xact_commit + xact_rollback). Backends publish
	// these counters when they go idle, at most once a second (after 10 s
	// when they stay idle), so a difference is good to about a second of
	// traffic at each end.
	Xacts int64
	// XIDs is the transaction ids assigned: transactions that wrote
	// (read-only ones get none). Exact at any moment.
	XIDs int64
	// LSN is the WAL flushed so far (pg_current_wal_flush_lsn), in bytes.
	LSN int64
	// WALRecords is pg_stat_wal's wal_records, published like Xacts.
	WALRecords int64
}

// ReadDBCounters reads db's counters now.
func ReadDBCounters(ctx context.Context, db *pgxpool.Pool) (DBCounters, error) {
	var c DBCounters
	var lsn string
	err := db.QueryRow(ctx, `select
		(select xact_commit + xact_rollback from pg_stat_database where datname = current_database()),
		pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
		pg_current_wal_flush_lsn()::text,
		(select wal_records from pg_stat_wal)`).Scan(&c.Xacts, &c.XIDs, &lsn, &c.WALRecords)
	if err != nil {
		return c, fmt.Errorf("read database counters: %w", err)
	}
	c.LSN, err = ParseLSN(lsn)
	return c, err
}

// Sub is c less an earlier reading.
func (c DBCounters) Sub(earlier DBCounters) DBCounters {
	return DBCounters{Xacts: c.Xacts - earlier.Xacts, XIDs: c.XIDs - earlier.XIDs,
		LSN: c.LSN - earlier.LSN, WALRecords: c.WALRecords - earlier.WALRecords}
}

// ParseLSN parses a pg_lsn's text ("16/B374D848") into a byte position.
func ParseLSN(s string) (int64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	return int64(h<<32 | l), nil
}

// FormatLSN is ParseLSN's inverse.
func FormatLSN(n int64) string { return fmt.Sprintf("%X/%X", uint64(n)>>32, uint32(n)) }

// WALStats is the WAL written between two positions, by resource manager.
type WALStats struct {
	Records, Bytes int64
	// ByKind is records and bytes per resource manager and record type
	// ("Heap/INSERT", "Heap/HOT_UPDATE", "Btree/INSERT_LEAF",
	// "Transaction/COMMIT", …), largest first by bytes.
	ByKind []WALKind
}

// WALKind is one record type's share of WALStats.
type WALKind struct {
	Name           string
	Records, Bytes int64
}

// ReadWAL reads the WAL records between two flushed positions with
// pg_walinspect (which must be installed in db's database; a superuser
// connection): exact counts, unlike pg_stat_wal's published ones.
func ReadWAL(ctx context.Context, db *pgxpool.Pool, from, to int64) (WALStats, error) {
	var w WALStats
	rows, err := db.Query(ctx, `select "resource_manager/record_type", count, combined_size
		from pg_get_wal_stats($1::text::pg_lsn, $2::text::pg_lsn, true) where count > 0 order by combined_size desc`,
		FormatLSN(from), FormatLSN(to))
	if err != nil {
		return w, fmt.Errorf("read WAL stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k WALKind
		if err := rows.Scan(&k.Name, &k.Records, &k.Bytes); err != nil {
			return w, fmt.Errorf("read WAL stats: %w", err)
		}
		w.Records += k.Records
		w.Bytes += k.Bytes
		w.ByKind = append(w.ByKind, k)
	}
	if err := rows.Err(); err != nil {
		return w, fmt.Errorf("read WAL stats: %w", err)
	}
	return w, nil
}

// Statement is one pg_stat_statements entry.
type Statement struct {
	Query     string
	TopLevel  bool    // run by a client, not inside a function
	Calls     int64   //
	TotalMs   float64 // execution time, all calls
	Rows      int64   //
	WALBytes  int64   //
	WALRecord int64   //
}

// ResetStatements clears pg_stat_statements (installed in db's database).
func ResetStatements(ctx context.Context, db *pgxpool.Pool) error {
	_, err := db.Exec(ctx, `select pg_stat_statements_reset()`)
	return err
}

// TopStatements is the n statements of db's database that took the most
// execution time since ResetStatements, the costliest first.
func TopStatements(ctx context.Context, db *pgxpool.Pool, n int) ([]Statement, error) {
	rows, err := db.Query(ctx, `select query, toplevel, calls, total_exec_time, rows, wal_bytes::bigint, wal_records
		from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
		order by total_exec_time desc limit $1`, n)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	var out []Statement
	for rows.Next() {
		var s Statement
		if err := rows.Scan(&s.Query, &s.TopLevel, &s.Calls, &s.TotalMs, &s.Rows, &s.WALBytes, &s.WALRecord); err != nil {
			return nil, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ShortQuery squeezes a statement's text onto one line of at most n runes.
func ShortQuery(q string, n int) string {
	q = strings.Join(strings.Fields(q), " ")
	if r := []rune(q); len(r) > n {
		q = string(r[:n-1]) + "…"
	}
	return q
}
