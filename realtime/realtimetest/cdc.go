package realtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// DefaultPublication is the publication Supabase Realtime reads.
const DefaultPublication = "supabase_realtime"

// CDCOptions configures StartCDC. The zero value is valid.
type CDCOptions struct {
	// Publication whose tables produce changes. Defaults to "supabase_realtime".
	Publication string
	// SlotName of the temporary replication slot. Defaults to a random
	// "realtimetest_<hex>" name.
	SlotName string
	// StatusInterval is the period of standby status updates (sent after
	// every commit too). Defaults to 1s.
	StatusInterval time.Duration
	// RetryInterval is the wait before a failed replication stream is
	// restarted with a new slot (changes in between are lost, as with
	// Realtime). Defaults to 1s.
	RetryInterval time.Duration
	// Logger receives progress and errors; nil discards them.
	Logger *zap.Logger
}

// CDC streams committed changes of the publication's tables from PostgreSQL
// logical decoding (pgoutput) into a Server, and lets the server check row
// visibility and subscriptions against the same database. It owns one
// replication connection (with a temporary slot) and, unless
// Options.DB of the server provides one, a small pool; Close releases them.
// Its methods are safe for concurrent use.
type CDC struct {
	srv   *Server
	opts  CDCOptions
	dbURL string
	pool  *pgxpool.Pool
	log   *zap.Logger

	cancel    context.CancelFunc
	done      chan struct{}
	closePool func() // closes pool if the CDC opened it
	closeOnce sync.Once

	mu      sync.Mutex // guards lastErr
	lastErr error

	decoded  atomic.Int64
	restarts atomic.Int64

	meta *catalogCache
}

// StartCDC connects to dbURL, creates a temporary logical replication slot
// with the pgoutput plugin and starts streaming the publication's changes
// to srv, in commit order. Changes committed after StartCDC returns are
// delivered. ctx bounds the start-up only; the CDC runs until Close.
func StartCDC(ctx context.Context, dbURL string, srv *Server, opts CDCOptions) (*CDC, error) {
	if srv == nil {
		return nil, errors.New("start cdc: server is nil")
	}
	if opts.Publication == "" {
		opts.Publication = DefaultPublication
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = time.Second
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	pool, ownPool := srv.opts.DB, false
	if pool == nil {
		poolCfg, err := pgxpool.ParseConfig(dbURL)
		if err != nil {
			return nil, fmt.Errorf("start cdc: parse database url: %w", err)
		}
		poolCfg.MaxConns = 4
		if pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
			return nil, fmt.Errorf("start cdc: open pool: %w", err)
		}
		ownPool = true
	}
	closePool := func() {
		if ownPool {
			pool.Close()
		}
	}
	var exists bool
	if err := pool.QueryRow(ctx, `select exists(select 1 from pg_publication where pubname = $1)`, opts.Publication).Scan(&exists); err != nil {
		closePool()
		return nil, fmt.Errorf("start cdc: check publication %q: %w", opts.Publication, err)
	}
	if !exists {
		closePool()
		return nil, fmt.Errorf("start cdc: publication %q does not exist", opts.Publication)
	}

	c := &CDC{
		srv:   srv,
		opts:  opts,
		dbURL: dbURL,
		pool:  pool,
		log:   opts.Logger.Named("realtimetest.cdc"),
		done:  make(chan struct{}),
		meta:  newCatalogCache(pool),
	}
	c.closePool = closePool
	st, err := c.openStream(ctx)
	if err != nil {
		closePool()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	srv.setBackend(c)
	srv.rate.start()
	go c.run(runCtx, st)
	return c, nil
}

// Close stops streaming, drops the replication connection and waits
// (briefly) for PostgreSQL to drop the temporary slot with it, so that the
// database can be dropped right after. It then detaches from the server and
// closes the pool.
func (c *CDC) Close() error {
	c.cancel()
	<-c.done
	c.srv.clearBackend(c)
	c.closeOnce.Do(c.closePool)
	return nil
}

// Err returns the last replication error, if any. The CDC keeps retrying
// after errors until closed.
func (c *CDC) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Changes returns the number of row changes decoded so far.
func (c *CDC) Changes() int { return int(c.decoded.Load()) }

// Restarts returns how often the replication stream was restarted after an error.
func (c *CDC) Restarts() int { return int(c.restarts.Load()) }

func (c *CDC) setErr(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// replicationStream is an open replication connection streaming from a
// temporary slot.
type replicationStream struct {
	conn *pgconn.PgConn
	slot string
	lsn  pglogrepl.LSN // where streaming starts
}

// openStream opens a replication connection, creates the temporary slot and
// starts pgoutput on the publication.
func (c *CDC) openStream(ctx context.Context) (replicationStream, error) {
	cfg, err := pgconn.ParseConfig(c.dbURL)
	if err != nil {
		return replicationStream{}, fmt.Errorf("start cdc: parse database url: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "realtimetest_cdc"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return replicationStream{}, fmt.Errorf("start cdc: replication connection: %w", err)
	}
	slot := c.opts.SlotName
	if slot == "" || c.restarts.Load() > 0 {
		slot = randomSlotName()
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	if err != nil {
		_ = conn.Close(context.Background())
		return replicationStream{}, fmt.Errorf("start cdc: create slot %q: %w", slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		_ = conn.Close(context.Background())
		return replicationStream{}, fmt.Errorf("start cdc: slot consistent point %q: %w", res.ConsistentPoint, err)
	}
	args := []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", escapeLiteral(c.opts.Publication))}
	if err := pglogrepl.StartReplication(ctx, conn, slot, lsn, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		_ = conn.Close(context.Background())
		return replicationStream{}, fmt.Errorf("start cdc: start replication on %q: %w", slot, err)
	}
	c.log.Debug("replication started", zap.String("slot", slot), zap.Stringer("lsn", lsn))
	return replicationStream{conn: conn, slot: slot, lsn: lsn}, nil
}

// run streams until ctx is done, restarting with a fresh slot after errors.
func (c *CDC) run(ctx context.Context, st replicationStream) {
	defer close(c.done)
	for {
		err := c.stream(ctx, st.conn, st.lsn)
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = st.conn.Close(closeCtx)
		cancel()
		if ctx.Err() != nil {
			c.awaitSlotDropped(st.slot)
			return
		}
		c.setErr(err)
		c.log.Warn("replication stream failed, restarting", zap.Error(err))
		for {
			if !sleepCtx(ctx, c.opts.RetryInterval) {
				c.awaitSlotDropped(st.slot)
				return
			}
			c.restarts.Add(1)
			st, err = c.openStream(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			c.setErr(err)
			c.log.Warn("replication restart failed", zap.Error(err))
		}
	}
}

// slotDropTimeout bounds the wait for a closed stream's temporary slot.
const slotDropTimeout = 5 * time.Second

// awaitSlotDropped waits until the temporary slot of a closed stream is
// gone: PostgreSQL drops it when the walsender exits, shortly after the
// connection closes, and until then the database cannot be dropped.
func (c *CDC) awaitSlotDropped(slot string) {
	if slot == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), slotDropTimeout)
	defer cancel()
	for {
		var n int
		err := c.pool.QueryRow(ctx, `select count(*) from pg_replication_slots where slot_name = $1`, slot).Scan(&n)
		if err != nil || n == 0 {
			return
		}
		if !sleepCtx(ctx, 10*time.Millisecond) {
			c.log.Warn("temporary slot still there after closing", zap.String("slot", slot))
			return
		}
	}
}

// stream reads one replication session: decodes pgoutput messages, hands
// row changes to the server poll by poll and acknowledges commits so the
// slot advances.
//
// Polls model Realtime's replication poller (Options.PollInterval): between
// polls nothing is read, so changes wait in the replication stream
// (PostgreSQL keeps them in the WAL; the slot has not confirmed them) and
// the walsender blocks once the socket is full. A poll reads whole
// transactions until it holds PollMaxChanges changes, or until the stream
// has had nothing more for pollDrainWait. With polling off, every
// transaction is a poll of its own and none waits.
//
// Reads wait at most until the next status update is due (or the drain
// wait ends). That wait is a read deadline on the connection, set when it
// changes, rather than a context with a deadline per message (which costs a
// timer and a context watcher per message); cancelling ctx expires the
// deadline at once.
func (c *CDC) stream(ctx context.Context, conn *pgconn.PgConn, startLSN pglogrepl.LSN) error {
	w := &walStream{
		cdc:        c,
		conn:       conn,
		rd:         &readDeadline{conn: conn.Conn()},
		dec:        newWALDecoder(c),
		ackLSN:     startLSN,
		nextStatus: time.Now().Add(c.opts.StatusInterval),
	}
	stop := context.AfterFunc(ctx, w.rd.expire)
	defer stop()
	next := time.Now()
	for {
		if err := w.waitUntil(ctx, next); err != nil {
			return err
		}
		b := w.dec.batch
		*b = pollBatch{start: time.Now()}
		if err := w.poll(ctx); err != nil {
			return err
		}
		next = time.Now().Add(c.srv.endPoll(b))
	}
}

// walStream is the state of one replication session.
type walStream struct {
	cdc  *CDC
	conn *pgconn.PgConn
	rd   *readDeadline
	dec  *walDecoder

	ackLSN     pglogrepl.LSN // confirmed to the server in status updates
	inTx       bool          // between a Begin and its Commit
	nextStatus time.Time     // when the next status update is due
	deadline   time.Time     // the read deadline last set
}

// sendStatusIfDue sends a standby status update if one is due.
func (w *walStream) sendStatusIfDue(ctx context.Context) error {
	if time.Now().Before(w.nextStatus) {
		return nil
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, w.conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: w.ackLSN})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	w.nextStatus = time.Now().Add(w.cdc.opts.StatusInterval)
	w.deadline = time.Time{} // the send may have reset the connection's deadline
	return nil
}

// waitUntil waits, reading nothing but keeping status updates flowing,
// until t.
func (w *walStream) waitUntil(ctx context.Context, t time.Time) error {
	for {
		if err := w.sendStatusIfDue(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		if !now.Before(t) {
			return nil
		}
		wake := t
		if w.nextStatus.Before(wake) {
			wake = w.nextStatus
		}
		if !sleepCtx(ctx, wake.Sub(now)) {
			return ctx.Err()
		}
	}
}

// poll reads one poll's worth of messages into the decoder's batch.
func (w *walStream) poll(ctx context.Context) error {
	polling := w.cdc.srv.polling()
	maxChanges := w.cdc.srv.opts.PollMaxChanges
	for {
		if err := w.sendStatusIfDue(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		deadline := w.nextStatus
		var drainAt time.Time
		if polling && !w.inTx {
			drainAt = time.Now().Add(pollDrainWait)
			if drainAt.Before(deadline) {
				deadline = drainAt
			}
		}
		if !w.deadline.Equal(deadline) {
			w.rd.set(deadline)
			w.deadline = deadline
		}
		raw, err := w.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				if !drainAt.IsZero() && !time.Now().Before(drainAt) {
					return nil // nothing more in the slot for now
				}
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		committed, err := w.handle(ctx, raw)
		if err != nil {
			return err
		}
		if committed && (!polling || w.dec.batch.changes >= maxChanges) {
			return nil
		}
	}
}

// handle processes one message of the replication stream; it reports
// whether the message committed a transaction.
func (w *walStream) handle(ctx context.Context, raw pgproto3.BackendMessage) (bool, error) {
	switch msg := raw.(type) {
	case *pgproto3.ErrorResponse:
		return false, fmt.Errorf("replication: %w", pgconn.ErrorResponseToPgError(msg))
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return false, nil
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return false, fmt.Errorf("parse keepalive: %w", err)
			}
			if !w.inTx && pkm.ServerWALEnd > w.ackLSN {
				w.ackLSN = pkm.ServerWALEnd
			}
			if pkm.ReplyRequested {
				w.nextStatus = time.Time{}
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return false, fmt.Errorf("parse xlogdata: %w", err)
			}
			committed, err := w.dec.handle(ctx, xld.WALData, &w.inTx)
			if err != nil {
				return false, err
			}
			if committed > w.ackLSN {
				w.ackLSN = committed
				w.nextStatus = time.Time{} // acknowledge promptly
			}
			return committed != 0, nil
		}
	}
	return false, nil
}

// readDeadline sets the replication connection's read deadline until it is
// expired for good.
type readDeadline struct {
	conn    net.Conn
	mu      sync.Mutex
	expired bool
}

// set moves the deadline to t, unless the deadline was expired.
func (r *readDeadline) set(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.expired {
		_ = r.conn.SetReadDeadline(t)
	}
}

// expire makes pending and future reads time out at once.
func (r *readDeadline) expire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expired = true
	_ = r.conn.SetReadDeadline(time.Unix(1, 0))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func randomSlotName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "realtimetest_" + hex.EncodeToString(b[:])
}

// escapeLiteral doubles single quotes for use inside a SQL string literal.
func escapeLiteral(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(out)
}
