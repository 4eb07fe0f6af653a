// Package rest builds the sidecar's HTTP handler: grpc-gateway's generated
// routes for every batchgrpc service, with the JSON and headers the
// upstream APIs use.
package rest

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	// Imported also for its registration: the details the server sends
	// (ErrorInfo, BadRequest, RetryInfo) must decode to be read.
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	batchesv6 "batchgrpc.invalid/gateway/gen/batchgrpc/batches/v6"
	eventsv1 "batchgrpc.invalid/gateway/gen/batchgrpc/events/v1"
	trackv2 "batchgrpc.invalid/gateway/gen/batchgrpc/track/v2"
)

// Options bound what a client may send.
type Options struct {
	// A request body (an upload or JSON) that sends no byte for this long
	// is abandoned: 408, nothing stored. 0: no limit.
	BodyIdleTimeout time.Duration
	// The largest JSON request body; uploads are streamed and not limited
	// here (the server caps the file).
	MaxBodyBytes int64
}

// Handler serves every REST route of API.md, calling the server on conn.
func Handler(ctx context.Context, conn *grpc.ClientConn, opts Options) (http.Handler, error) {
	marshal := protojson.MarshalOptions{
		// Upstream spells fields in snake_case; json_name carries the
		// exceptions (events-bulk-create, _kx), renamed on the way out.
		UseProtoNames: true,
		// A result's "success": false is information, not noise.
		EmitUnpopulated: true,
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &jsonBody{&runtime.JSONPb{
			MarshalOptions: marshal,
			// A misspelled field is a 400 that names it, never dropped.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		runtime.WithForwardResponseRewriter(upstreamNames(marshal)),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithOutgoingTrailerMatcher(outgoingHeader),
		runtime.WithForwardResponseOption(forwardResponse),
		runtime.WithErrorHandler(errorResponse),
		runtime.WithRoutingErrorHandler(routingErrorResponse),
	)
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		batchesv6.RegisterBatchJobServiceHandler,
		batchesv6.RegisterFileAssetServiceHandler,
		batchesv6.RegisterReportServiceHandler,
		batchesv6.RegisterAudienceListServiceHandler,
		eventsv1.RegisterEventBulkCreateJobServiceHandler,
		eventsv1.RegisterProfileServiceHandler,
		eventsv1.RegisterEventServiceHandler,
		trackv2.RegisterTrackingServiceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			return nil, err
		}
	}
	// Registered last, so it takes the route from the generated JSON-stream
	// handler: upstream uploads files as multipart/form-data.
	files := batchesv6.NewFileAssetServiceClient(conn)
	if err := mux.HandlePath(http.MethodPost, "/v6/files", uploadHandler(mux, files)); err != nil {
		return nil, err
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return guardBodies(jsonAPIReads(mux), opts.BodyIdleTimeout, opts.MaxBodyBytes), nil
}

// incomingHeader passes the headers the server reads as gRPC metadata under
// their own names: the key, Klaviyo's API revision, and the W3C trace
// context, so the server's span continues the HTTP caller's trace.
func incomingHeader(key string) (string, bool) {
	switch lower := strings.ToLower(key); lower {
	case "revision", "idempotency-key", "traceparent", "tracestate":
		return lower, true
	case "authorization":
		// grpc-gateway forwards Authorization itself; a second copy would
		// make the server see two credentials.
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader returns the rate-limit metadata as the HTTP headers
// clients know; other metadata keeps grpc-gateway's prefixed form.
func outgoingHeader(key string) (string, bool) {
	if isRateLimitKey(key) {
		return key, true
	}
	return runtime.MetadataHeaderPrefix + key, true
}

func isRateLimitKey(key string) bool {
	key = strings.ToLower(key)
	return strings.HasPrefix(key, "ratelimit-") || key == "retry-after"
}

// rateLimitHeaders copies the rate-limit trailers of a call into the
// response headers: the server sends them as trailers, and grpc-gateway
// forwards trailers only to clients that ask for HTTP trailers.
func rateLimitHeaders(ctx context.Context, w http.ResponseWriter) {
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok {
		return
	}
	for key, values := range md.TrailerMD {
		if isRateLimitKey(key) {
			for _, v := range values {
				w.Header().Set(key, v)
			}
		}
	}
}

const bulkCreate = "/batchgrpc.events.v1.EventBulkCreateJobService/CreateEventBulkCreateJob"

// forwardResponse sets the headers and status of a successful call:
// Klaviyo answers a bulk create with 202 Accepted.
func forwardResponse(ctx context.Context, w http.ResponseWriter, resp proto.Message) error {
	rateLimitHeaders(ctx, w)
	// By method, not by message type: the route returns the bare job
	// (response_body), which grpc-gateway wraps in a type of its own.
	if method, ok := runtime.RPCMethod(ctx); ok && method == bulkCreate {
		w.WriteHeader(http.StatusAccepted)
	}
	return nil
}

// DefaultMaxBodyBytes is the server's largest message (a tracking batch of
// 50 commands of 800 KB fits).
const DefaultMaxBodyBytes = 64 << 20

// errorResponse answers an error in its API's own envelope (envelope.go)
// with the HTTP code grpc-gateway maps from the gRPC code, and the
// rate-limit headers (a 429 says when to come back). An error of the
// sidecar's own gets the server's details first (enrich); one that the body
// explains (it stalled, is too large, does not decode) says so.
func errorResponse(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	rateLimitHeaders(ctx, w)
	var own *clientError
	if state := stateOf(r); state != nil && !errors.As(err, &own) {
		if failure := state.failure(); failure != nil {
			err = failure
		}
	}
	if errors.As(err, &own) && own.httpStatus == http.StatusRequestTimeout {
		// The rest of a stalled body will not come: the connection closes.
		w.Header().Set("Connection", "close")
	}
	err = enrich(r, err)
	s := status.Convert(err)
	httpStatus := runtime.HTTPStatusFromCode(s.Code())
	var custom *runtime.HTTPStatusError
	if errors.As(err, &custom) {
		httpStatus = custom.HTTPStatus
		s = status.Convert(custom.Err)
	}
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		for key, values := range md.HeaderMD {
			if name, ok := outgoingHeader(key); ok {
				for _, v := range values {
					w.Header().Add(name, v)
				}
			}
		}
	}
	if httpStatus == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
		if seconds, ok := retryAfter(s); ok {
			w.Header().Set("Retry-After", seconds)
		}
	}
	if httpStatus == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", challenge(apiOf(r)))
	}
	body, merr := json.Marshal(errorBody(apiOf(r), isTrackingBatch(r), failureOf(s, httpStatus)))
	if merr != nil {
		// Strings and numbers only: cannot happen.
		grpclog.Errorf("error body: %v", merr)
		httpStatus, body = http.StatusInternalServerError, []byte(`{"message": "Internal error."}`)
	}
	w.Header().Del("Trailer")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	if _, err := w.Write(body); err != nil {
		grpclog.Infof("error body not sent: %v", err)
	}
}

// routingErrorResponse answers a request no route takes (errors.go).
func routingErrorResponse(
	ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int,
) {
	errorResponse(ctx, mux, m, w, r, routingError(r, httpStatus))
}

// retryAfter is the RetryInfo of s in whole seconds (at least 1), for a
// 429 whose call sent no retry-after (the server always does).
func retryAfter(s *status.Status) (string, bool) {
	for _, d := range s.Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok {
			seconds := math.Ceil(info.GetRetryDelay().AsDuration().Seconds())
			return strconv.Itoa(max(1, int(seconds))), true
		}
	}
	return "", false
}

// challenge is the WWW-Authenticate of a 401: the scheme the API's keys use.
func challenge(a api) string {
	switch a {
	case apiBatches:
		return "Bearer"
	case apiTracking:
		return `Basic realm="tracking"`
	}
	return "Klaviyo-API-Key"
}
