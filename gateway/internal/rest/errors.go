package rest

import (
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors the sidecar answers itself carry the same rich details as the
// server's (src/batchgrpc/errors.py): an ErrorInfo in domain "batchgrpc"
// whose reason is one of the server's catalogue, with upstream's code for
// the API in metadata["code"], and a BadRequest naming the field.

const domain = "batchgrpc"

// The reasons of the server's catalogue (errors.py Reason) the sidecar uses.
const (
	reasonInvalidArgument = "INVALID_ARGUMENT"
	reasonPayloadTooLarge = "PAYLOAD_TOO_LARGE"
	reasonTooManyItems    = "TOO_MANY_ITEMS"
	reasonNotFound        = "NOT_FOUND"
	reasonInternal        = "INTERNAL"
)

// maxEcho is the most characters of what a client sent that an error
// message or detail repeats (API.md, "Limits on everything a client sends").
const maxEcho = 256

// api is the upstream API family of a route, for upstream's error codes.
type api int

const (
	apiBatches  api = iota // /v6/... (Extole)
	apiEvents              // /api/... (Klaviyo: bulk create and the reads)
	apiTracking            // /track/v2/... (Bloomreach)
)

func apiOf(r *http.Request) api {
	switch path := r.URL.Path; {
	case strings.HasPrefix(path, "/v6/"):
		return apiBatches
	case strings.HasPrefix(path, "/track/"):
		return apiTracking
	}
	return apiEvents
}

// upstreamCode is errors.py's mapping of a reason to upstream's own code:
// InvalidArgument and its subclasses (PayloadTooLarge, TooManyItems) say
// "invalid_parameter" to batches, "bad_request" to tracking and "invalid"
// to the Klaviyo routes.
func upstreamCode(a api, reason string) string {
	switch reason {
	case reasonInvalidArgument, reasonPayloadTooLarge, reasonTooManyItems:
		switch a {
		case apiBatches:
			return "invalid_parameter"
		case apiTracking:
			return "bad_request"
		}
		return "invalid"
	case reasonNotFound:
		return "not_found"
	}
	return "internal"
}

// richStatus is a status with the server's details: ErrorInfo, and a
// BadRequest when a field is named. The message and field are clipped.
// upstream is upstream's code, "" for the one of the reason.
func richStatus(a api, code codes.Code, reason, upstream, field, message string) *status.Status {
	message = clip(message)
	s := status.New(code, message)
	if upstream == "" {
		upstream = upstreamCode(a, reason)
	}
	info := &errdetails.ErrorInfo{Reason: reason, Domain: domain, Metadata: map[string]string{"code": upstream}}
	if field == "" {
		with, err := s.WithDetails(info)
		if err != nil {
			return s
		}
		return with
	}
	bad := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: clip(field), Description: message, Reason: reason},
	}}
	with, err := s.WithDetails(info, bad)
	if err != nil {
		return s
	}
	return with
}

// clientError is an error the sidecar finds in a request before or while
// passing it on: a 400 (or httpStatus) with the rich details.
type clientError struct {
	reason     string
	field      string
	message    string
	httpStatus int    // 0: the status grpc-gateway maps from INVALID_ARGUMENT
	upstream   string // upstream's code where the reason's is not it
}

func (e *clientError) Error() string { return e.message }

func invalidField(field, message string) *clientError {
	return &clientError{reason: reasonInvalidArgument, field: field, message: message}
}

// toHTTP is the error grpc-gateway's handler writes for e on route a.
func (e *clientError) toHTTP(a api) error {
	err := richStatus(a, codes.InvalidArgument, e.reason, e.upstream, e.field, e.message).Err()
	if e.httpStatus != 0 {
		return &runtime.HTTPStatusError{HTTPStatus: e.httpStatus, Err: err}
	}
	return err
}

// enrich gives an error the sidecar itself produced the server's details.
// An error that already has an ErrorInfo comes from the server and passes
// unchanged; the others are grpc-gateway's (a query parameter that does
// not parse, an unknown route) or the connection's (no backend).
func enrich(r *http.Request, err error) error {
	var ce *clientError
	if errors.As(err, &ce) {
		return ce.toHTTP(apiOf(r))
	}
	var httpErr *runtime.HTTPStatusError
	if errors.As(err, &httpErr) {
		return &runtime.HTTPStatusError{HTTPStatus: httpErr.HTTPStatus, Err: enrich(r, httpErr.Err)}
	}
	s := status.Convert(err)
	for _, d := range s.Details() {
		if _, ok := d.(*errdetails.ErrorInfo); ok {
			return err
		}
	}
	reason := reasonInternal
	switch s.Code() {
	case codes.InvalidArgument:
		reason = reasonInvalidArgument
	case codes.NotFound, codes.Unimplemented:
		// grpc-gateway's "Not Found" and "Method Not Allowed": no such route.
		reason = reasonNotFound
	}
	field := ""
	if reason == reasonInvalidArgument {
		field = fieldIn(s.Message())
	}
	return richStatus(apiOf(r), s.Code(), reason, "", field, s.Message()).Err()
}

// routingError is the error for a request that matches no route: 404, or
// 405 for a path whose route takes another method (grpc-gateway's default
// says UNIMPLEMENTED, which is a 501).
func routingError(r *http.Request, httpStatus int) error {
	route := r.Method + " " + r.URL.Path
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		err := richStatus(apiOf(r), codes.Unimplemented, reasonNotFound, "method_not_allowed", "",
			"The method is not allowed on this route: "+route).Err()
		return &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: err}
	case http.StatusNotFound:
		return richStatus(apiOf(r), codes.NotFound, reasonNotFound, "", "", "No such route: "+route).Err()
	}
	return richStatus(apiOf(r), codes.InvalidArgument, reasonInvalidArgument, "", "", http.StatusText(httpStatus)).Err()
}

// grpc-gateway names the field of a bad query or path parameter in its
// messages ("parsing field \"page_size\": ...", "parameter: batch_id").
var namedField = regexp.MustCompile(`(?:field|list|map key|map value|parameter):? "?([A-Za-z0-9_.]+)"?`)

func fieldIn(message string) string {
	if m := namedField.FindStringSubmatch(message); m != nil {
		return m[1]
	}
	return ""
}

// clip keeps at most maxEcho characters of s, marking the cut; bytes that
// are not UTF-8 become U+FFFD (a status message must be valid UTF-8).
func clip(s string) string {
	n := 0
	for i := range s {
		if n == maxEcho {
			return strings.ToValidUTF8(s[:i], "\uFFFD") + "…"
		}
		n++
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
