package api

import (
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Rejected calls are logged at info, at most rejectBurst lines per
// rejectWindow: enough to see who is knocking with a wrong token, too few
// for a client retrying in a loop (or a scan) to flood the log.
const (
	rejectBurst  = 5
	rejectWindow = time.Minute
)

// rejections rate-limits the log lines of refused calls (401, 403). The
// calls left unlogged are counted, and the next line logged says how many.
type rejections struct {
	mu         sync.Mutex
	windowFrom time.Time
	logged     int // lines in the window starting at windowFrom
	suppressed int // calls refused and not logged since the last line
}

// logRejected logs a refused call: the route, the status and code, the
// reason the caller was given (never the token), and the client's address.
func (a *API) logRejected(r *http.Request, e *Error) {
	now := a.opts.Now()
	rj := &a.count.rejected
	rj.mu.Lock()
	if now.Sub(rj.windowFrom) >= rejectWindow || now.Before(rj.windowFrom) {
		rj.windowFrom, rj.logged = now, 0
	}
	if rj.logged >= rejectBurst {
		rj.suppressed++
		rj.mu.Unlock()
		return
	}
	rj.logged++
	suppressed := rj.suppressed
	rj.suppressed = 0
	rj.mu.Unlock()
	fields := []zap.Field{zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", e.Status),
		zap.String("code", e.Code), zap.String("reason", e.Message), zap.String("remote_addr", r.RemoteAddr)}
	if suppressed > 0 {
		fields = append(fields, zap.Int("suppressed", suppressed))
	}
	a.log.Info("API request rejected", fields...)
}
