package supabase

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
)

// rpc calls a database function through PostgREST: POST /rpc/<fn> with
// args, the JSON object of its named arguments, whose names are given in
// names. It has the store's retries, timeouts and error mapping.
//
// The names also go in ?columns=. PostgREST then passes the body to the
// database as it is, instead of parsing it first to find the argument
// names: the claims and outcome reports of the delivery path are batches of
// tens of kilobytes. For the same reason the body is written by the caller
// (see wire_append.go) rather than by postgrest-go, which would encode it
// with reflection and then validate it again; postgrest-go's Rpc has no
// context either.
func (s *Store) rpc(ctx context.Context, op, fn string, args []byte, names ...string) ([]byte, error) {
	url := s.rpcBase + fn + "?columns=" + strings.Join(names, ",") // plain identifiers: nothing to escape
	var body []byte
	err := s.retry(ctx, op, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(args))
		if err != nil {
			return err
		}
		req.Header = s.rpcHeader.Clone()
		resp, err := s.rpcClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := readBody(resp.Body, resp.ContentLength, s.opts.MaxResponseBytes)
		if err != nil {
			return err
		}
		body = b
		return nil
	})
	return body, err
}

// maxPrealloc bounds the buffer readBody allocates before reading.
const maxPrealloc = 4 << 20

// readBody reads a response body to its end. When its length n is known
// (and within limit) the buffer is allocated once at that size: the
// answers on the delivery path are tens to hundreds of kilobytes, which
// io.ReadAll would reach by doubling. A length over maxPrealloc is not
// taken on trust: the buffer starts there and grows as bytes arrive.
func readBody(r io.Reader, n, limit int64) ([]byte, error) {
	if n < 0 || n > limit {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(n, maxPrealloc)+bytes.MinRead))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}
