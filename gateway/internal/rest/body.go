package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// Every request body passes through a guard: a body that sends no byte for
// the idle timeout is abandoned (the connection's read deadline moves with
// each read, so a slow but live upload of any size goes on), and a JSON
// body may not exceed the body limit (uploads are streamed, never held, so
// they have none here; the server caps the file).

var (
	errIdle     = errors.New("the request body sent nothing for the idle timeout")
	errTooLarge = errors.New("the request body is over the limit")
)

// bodyState is what the guard saw of a request's body, for the error
// handler: the JSON routes' generated code flattens a decode error into a
// message, and this keeps what the message lost.
type bodyState struct {
	idleTimeout time.Duration
	maxBytes    int64
	idle        bool
	tooLarge    bool
	// The JSON body's decode error, with its field (decode.go).
	decode *clientError
}

type bodyStateKey struct{}

func stateOf(r *http.Request) *bodyState {
	state, _ := r.Context().Value(bodyStateKey{}).(*bodyState)
	return state
}

// failure is the error the body itself explains, if any.
func (s *bodyState) failure() *clientError {
	switch {
	case s.idle:
		return &clientError{
			reason:     reasonInvalidArgument,
			field:      "body",
			message:    fmt.Sprintf("The request body sent no byte for %s; the request is abandoned.", s.idleTimeout),
			httpStatus: http.StatusRequestTimeout,
		}
	case s.tooLarge:
		return &clientError{
			reason:  reasonPayloadTooLarge,
			field:   "body",
			message: fmt.Sprintf("The request body is larger than the maximum of %d bytes.", s.maxBytes),
		}
	}
	return s.decode
}

func isUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/v6/files"
}

// guardBodies wraps every request body of next in a guardedBody.
func guardBodies(next http.Handler, idle time.Duration, maxBytes int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		state := &bodyState{idleTimeout: idle, maxBytes: maxBytes}
		r = r.WithContext(context.WithValue(r.Context(), bodyStateKey{}, state))
		// No body, no deadline: a read deadline left on the connection
		// would reach the server's own background read and cancel the call.
		if r.Body != nil && r.Body != http.NoBody {
			limit := maxBytes
			if isUpload(r) {
				limit = -1
			}
			r.Body = &guardedBody{
				body: r.Body, conn: http.NewResponseController(w), idle: idle, left: limit,
				length: r.ContentLength, state: state, pointers: apiOf(r) == apiEvents,
			}
		}
		next.ServeHTTP(w, r)
	})
}

type guardedBody struct {
	body io.ReadCloser
	conn *http.ResponseController
	idle time.Duration
	// Bytes the body may still send; -1: no limit.
	left int64
	// The declared Content-Length, -1 when unknown.
	length int64
	state  *bodyState
	// The route names fields by JSON pointer (the Klaviyo routes).
	pointers bool
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.state.idle {
		return 0, errIdle
	}
	if b.left >= 0 {
		if b.length > b.left || b.state.tooLarge {
			b.state.tooLarge = true
			return 0, errTooLarge
		}
		// One byte more than allowed tells a body at the limit from one over it.
		if int64(len(p)) > b.left+1 {
			p = p[:b.left+1]
		}
	}
	if b.idle > 0 {
		// Not supported by a test's ResponseRecorder: then no timeout.
		_ = b.conn.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.body.Read(p)
	if b.left >= 0 {
		if int64(n) > b.left {
			b.state.tooLarge = true
			return int(b.left), errTooLarge
		}
		b.left -= int64(n)
	}
	if err != nil && isTimeout(err) {
		b.state.idle = true
		return n, errIdle
	}
	if errors.Is(err, io.EOF) && b.idle > 0 {
		// The whole body is in: the server's background read that watches
		// for a closed connection must not time out while the call runs.
		_ = b.conn.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (b *guardedBody) Close() error { return b.body.Close() }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
