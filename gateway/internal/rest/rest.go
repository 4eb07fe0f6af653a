// Package rest builds the sidecar's HTTP handler: grpc-gateway's generated
// routes for every batchgrpc service, with the JSON and headers the
// upstream APIs use.
package rest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	// The error details the server sends (ErrorInfo, BadRequest, RetryInfo),
	// registered so that an error body can carry them decoded.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
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
	return guardBodies(mux, opts.BodyIdleTimeout, opts.MaxBodyBytes), nil
}

// incomingHeader passes the headers the server reads as gRPC metadata under
// their own names: the key, and Klaviyo's API revision.
func incomingHeader(key string) (string, bool) {
	switch lower := strings.ToLower(key); lower {
	case "revision", "idempotency-key":
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

// errorResponse is grpc-gateway's: the usual HTTP code for the gRPC code and
// the google.rpc.Status with its details as the body, plus the rate-limit
// headers (a 429 says when to come back). An error of the sidecar's own
// gets the server's details (enrich); one that the body explains (it
// stalled, is too large, does not decode) says so.
func errorResponse(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
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
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, enrich(r, err))
}
