package supabasetest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// This file runs a request's statement the way PostgREST does: in one
// transaction, read-only for reads, with the role and claims of the JWT and
// the request's details as transaction-local settings.

// txVarsSQL sets every transaction-local setting of a request in one
// statement.
const txVarsSQL = `select set_config('search_path', $1, true), set_config('role', $2, true),
  set_config('request.jwt.claims', $3, true), set_config('request.jwt.claim.sub', $4, true),
  set_config('request.jwt.claim.role', $5, true), set_config('request.method', $6, true),
  set_config('request.path', $7, true), set_config('request.headers', $8, true)`

// statement is a request's main statement and how its row is answered.
type statement struct {
	sql      string
	args     []any
	readOnly bool
	// answer turns the statement's row into the response. An error rolls
	// the transaction back and is answered instead.
	answer func(*mainResult) (*response, error)
}

// mainResult is the row every main statement returns.
type mainResult struct {
	Total     *int64
	PageTotal int64
	Body      string
	Location  []string
	GUCHdrs   *string
	GUCStatus *string
	Inserted  *int64
}

func (m *mainResult) scan(row pgx.Row) error {
	return row.Scan(&m.Total, &m.PageTotal, &m.Body, &m.Location, &m.GUCHdrs, &m.GUCStatus, &m.Inserted)
}

// errBegin marks a failure to start the transaction.
type errBegin struct{ err error }

func (e errBegin) Error() string { return "begin transaction: " + e.err.Error() }
func (e errBegin) Unwrap() error { return e.err }

// exec runs st in a transaction with the request's role and claims and
// answers from its row. BEGIN, the settings and st reach the server in one
// pipeline (a statement new to the connection is prepared first, in a round
// trip of its own); COMMIT follows once the answer is a success, else
// ROLLBACK.
func (rq *request) exec(ctx context.Context, st *statement) *response {
	b := &pgx.Batch{}
	b.BeginTx(rq.txOptions(st.readOnly))
	b.Queue(txVarsSQL, rq.txVars()...)
	b.Queue(st.sql, st.args...)
	br := rq.rest.pool.SendBatch(ctx, b)
	tx := br.Tx()
	var m mainResult
	err := readBatch(br, &m)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		rollback(ctx, tx)
		if isPrepareError(err) && ctx.Err() == nil {
			// The statement was parsed before the transaction began, as the
			// pool's user with its search_path. Let the transaction parse it
			// again: the error may be for that user and path alone.
			return rq.inTx(ctx, st.readOnly, func(ctx context.Context, tx pgx.Tx) (*response, bool, error) {
				m, err := runMain(ctx, tx, st.sql, st.args)
				if err != nil {
					return nil, false, err
				}
				resp, err := st.answer(m)
				return resp, err == nil, err
			})
		}
		return rq.failure(ctx, err)
	}
	resp, err := st.answer(&m)
	if err != nil {
		rollback(ctx, tx)
		return rq.failure(ctx, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return rq.failure(ctx, err)
	}
	return resp
}

// readBatch reads the results of exec's batch: BEGIN, settings, statement.
func readBatch(br pgx.BatchResults, m *mainResult) error {
	if _, err := br.Exec(); err != nil {
		if isPrepareError(err) {
			return err
		}
		return errBegin{err}
	}
	if _, err := br.Exec(); err != nil {
		return err
	}
	return m.scan(br.QueryRow())
}

// failure answers err, or nil when the client is gone.
func (rq *request) failure(ctx context.Context, err error) *response {
	if ctx.Err() != nil {
		return nil
	}
	if eb := (errBegin{}); errors.As(err, &eb) {
		return errorResponse(errDBConnection(eb.err))
	}
	return errorResponse(asAPIError(err, rq.authed()))
}

// rollback ends tx, even when the request's context is done.
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}

func (rq *request) txOptions(readOnly bool) pgx.TxOptions {
	mode := pgx.ReadWrite
	if readOnly {
		mode = pgx.ReadOnly
	}
	return pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: mode}
}

// txVars are the arguments of txVarsSQL.
func (rq *request) txVars() []any {
	return []any{rq.searchPath(), rq.auth.Role, rq.auth.ClaimsJSON, rq.auth.Sub, rq.auth.Role,
		rq.method, rq.hreq.URL.Path, rq.headersJSON()}
}

// inTx runs fn in one transaction with the request's role and claims, one
// statement at a time. fn returns the response and whether to commit;
// errors roll back and are answered in PostgREST's shape.
func (rq *request) inTx(ctx context.Context, readOnly bool, fn func(context.Context, pgx.Tx) (*response, bool, error)) *response {
	tx, err := rq.rest.pool.BeginTx(ctx, rq.txOptions(readOnly))
	if err != nil {
		return rq.failure(ctx, errBegin{err})
	}
	if _, err := tx.Exec(ctx, txVarsSQL, rq.txVars()...); err != nil {
		rollback(ctx, tx)
		return rq.failure(ctx, err)
	}
	resp, commit, err := fn(ctx, tx)
	if err != nil {
		rollback(ctx, tx)
		return rq.failure(ctx, err)
	}
	if !commit {
		rollback(ctx, tx)
		return resp
	}
	if err := tx.Commit(ctx); err != nil {
		rollback(ctx, tx)
		return rq.failure(ctx, err)
	}
	return resp
}

func runMain(ctx context.Context, tx pgx.Tx, sql string, args []any) (*mainResult, error) {
	var m mainResult
	if err := m.scan(tx.QueryRow(ctx, sql, args...)); err != nil {
		return nil, err
	}
	return &m, nil
}

func (rq *request) searchPath() string {
	return ident(rq.schema) + ", " + ident("public")
}

func (rq *request) headersJSON() string {
	h := map[string]string{}
	for k, vs := range rq.hreq.Header {
		if strings.EqualFold(k, "Cookie") || len(vs) == 0 {
			continue
		}
		h[strings.ToLower(k)] = vs[0]
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// isPrepareError reports whether err is the server refusing to prepare a
// statement of a batch, before any statement of the batch ran.
func isPrepareError(err error) bool {
	var pe pgx.ErrPreprocessingBatch
	var pgErr *pgconn.PgError
	return errors.As(err, &pe) && errors.As(err, &pgErr)
}
