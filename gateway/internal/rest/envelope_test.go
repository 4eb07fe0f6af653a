package rest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// serverError is a status as the server sends it (errors.py to_status).
func serverError(t *testing.T, code codes.Code, message, reason string, meta map[string]string, more ...protoadapt.MessageV1) error {
	t.Helper()
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: domain, Metadata: meta}}, more...)
	s, err := status.New(code, message).WithDetails(details...)
	if err != nil {
		t.Fatal(err)
	}
	return s.Err()
}

func violations(pairs ...string) *errdetails.BadRequest {
	bad := &errdetails.BadRequest{}
	for i := 0; i < len(pairs); i += 2 {
		bad.FieldViolations = append(bad.FieldViolations,
			&errdetails.BadRequest_FieldViolation{Field: pairs[i], Description: pairs[i+1], Reason: "INVALID_ARGUMENT"})
	}
	return bad
}

var uuid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// errorAnswer runs the error handler for err on method path, with the call's
// trailers, and returns the status, headers and body with every id checked
// to be a UUID and then blanked.
func errorAnswer(t *testing.T, method, path string, err error, trailers metadata.MD) (int, http.Header, any) {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	ctx := runtime.NewServerMetadataContext(context.Background(), runtime.ServerMetadata{TrailerMD: trailers})
	w := httptest.NewRecorder()
	errorResponse(ctx, nil, nil, w, r, err)
	if got := w.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("%s: Content-Type %q", path, got)
	}
	var body any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s: %v: %s", path, err, w.Body)
	}
	blank := func(obj map[string]any, key string) {
		id, _ := obj[key].(string)
		if !uuid.MatchString(id) {
			t.Errorf("%s: %s %q is not a UUID", path, key, id)
		}
		obj[key] = "ID"
	}
	if obj, ok := body.(map[string]any); ok {
		if _, ok := obj["unique_id"]; ok {
			blank(obj, "unique_id")
		}
		if errs, ok := obj["errors"].([]any); ok {
			for _, e := range errs {
				if entry, ok := e.(map[string]any); ok {
					blank(entry, "id")
				}
			}
		}
	}
	return w.Code, w.Header(), body
}

func jsonOf(t *testing.T, text string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("%v: %s", err, text)
	}
	return v
}

func TestErrorsAnswerInEachAPIsOwnEnvelope(t *testing.T) {
	bulkPointer := "/data/attributes/events-bulk-create/data/%d/attributes/profile/data/attributes/email"
	cases := []struct {
		name, method, path string
		err                error
		status             int
		body               string
	}{
		{
			name: "klaviyo validation: one error object per violation, each with its pointer",
			path: "/api/event-bulk-create-jobs", method: http.MethodPost,
			err: serverError(t, codes.InvalidArgument, "2 invalid fields", "INVALID_ARGUMENT", map[string]string{"code": "invalid"},
				violations(
					fmt.Sprintf(bulkPointer, 0), "Invalid email address.",
					fmt.Sprintf(bulkPointer, 3), "Invalid email address: x@",
				)),
			status: 400,
			body: `{"errors": [
				{"id": "ID", "status": 400, "code": "invalid", "title": "Invalid input.", "detail": "Invalid email address.",
				 "source": {"pointer": "/data/attributes/events-bulk-create/data/0/attributes/profile/data/attributes/email"}, "meta": {}},
				{"id": "ID", "status": 400, "code": "invalid", "title": "Invalid input.", "detail": "Invalid email address: x@",
				 "source": {"pointer": "/data/attributes/events-bulk-create/data/3/attributes/profile/data/attributes/email"}, "meta": {}}]}`,
		},
		{
			name: "klaviyo header: source.parameter, and the message says the one violation",
			path: "/api/profiles", method: http.MethodGet,
			err: serverError(t, codes.InvalidArgument, "The revision header is required.", "MISSING_REVISION",
				map[string]string{"code": "invalid"}, violations("revision", "required header")),
			status: 400,
			body: `{"errors": [{"id": "ID", "status": 400, "code": "invalid", "title": "Invalid input.",
				"detail": "The revision header is required.", "source": {"parameter": "revision"}, "meta": {}}]}`,
		},
		{
			name: "klaviyo not found", path: "/api/event-bulk-create-jobs/nope", method: http.MethodGet,
			err:    serverError(t, codes.NotFound, "No such bulk job.", "NOT_FOUND", map[string]string{"code": "not_found"}),
			status: 404,
			body: `{"errors": [{"id": "ID", "status": 404, "code": "not_found", "title": "Not found.",
				"detail": "No such bulk job.", "source": {"pointer": "/data"}, "meta": {}}]}`,
		},
		{
			name: "klaviyo unauthenticated", path: "/api/profiles", method: http.MethodGet,
			err: serverError(t, codes.Unauthenticated, "Missing or invalid API key.", "INVALID_CREDENTIALS",
				map[string]string{"code": "not_authenticated"}),
			status: 401,
			body: `{"errors": [{"id": "ID", "status": 401, "code": "not_authenticated",
				"title": "Authentication credentials were not provided.", "detail": "Missing or invalid API key.",
				"source": {"pointer": "/data"}, "meta": {}}]}`,
		},
		{
			name: "klaviyo internal", path: "/api/events", method: http.MethodGet,
			err:    serverError(t, codes.Internal, "Internal error.", "INTERNAL", map[string]string{"code": "internal"}),
			status: 500,
			body: `{"errors": [{"id": "ID", "status": 500, "code": "internal", "title": "A server error occurred.",
				"detail": "Internal error.", "source": {"pointer": "/data"}, "meta": {}}]}`,
		},
		{
			name: "extole not found: the metadata are the parameters", path: "/v6/batches/job_x", method: http.MethodGet,
			err: serverError(t, codes.NotFound, "Batch job not found", "BATCH_JOB_NOT_FOUND",
				map[string]string{"code": "batch_job_not_found", "batch_job_id": "job_x"}),
			status: 404,
			body: `{"unique_id": "ID", "http_status_code": 404, "code": "batch_job_not_found",
				"message": "Batch job not found", "parameters": {"batch_job_id": "job_x"}}`,
		},
		{
			name: "extole validation: the first field, and how many", path: "/v6/batches", method: http.MethodPost,
			err: serverError(t, codes.InvalidArgument, "Invalid job.", "INVALID_JOB_SPEC", map[string]string{"code": "invalid_parameter"},
				violations("columns[0].name_pattern", "Not a regex.", "tags[2]", "Too long.")),
			status: 400,
			body: `{"unique_id": "ID", "http_status_code": 400, "code": "invalid_parameter", "message": "Invalid job.",
				"parameters": {"field": "columns[0].name_pattern", "description": "Not a regex.", "reason": "INVALID_ARGUMENT",
					"field_violations": "2"}}`,
		},
		{
			name: "extole permission denied", path: "/v6/batches", method: http.MethodGet,
			err: serverError(t, codes.PermissionDenied, "The key lacks the scope batches:read.", "MISSING_SCOPE",
				map[string]string{"code": "scopes_denied"}),
			status: 403,
			body: `{"unique_id": "ID", "http_status_code": 403, "code": "scopes_denied",
				"message": "The key lacks the scope batches:read.", "parameters": {}}`,
		},
		{
			name: "extole invalid state transition is upstream's 400", path: "/v6/batches/job_1/expire", method: http.MethodPost,
			err: serverError(t, codes.FailedPrecondition, "Batch job job_1 cannot go from PENDING to EXPIRED.",
				"BATCH_JOB_INVALID_STATE_TRANSITION", map[string]string{
					"code": "batch_job_invalid_state_transition", "batch_job_id": "job_1",
					"current_status": "PENDING", "target_status": "EXPIRED",
				}),
			status: 400,
			body: `{"unique_id": "ID", "http_status_code": 400, "code": "batch_job_invalid_state_transition",
				"message": "Batch job job_1 cannot go from PENDING to EXPIRED.",
				"parameters": {"batch_job_id": "job_1", "current_status": "PENDING", "target_status": "EXPIRED"}}`,
		},
		{
			name: "bloomreach batch refused whole: message", path: "/track/v2/projects/p/batch", method: http.MethodPost,
			err: serverError(t, codes.InvalidArgument, "No commands", "NO_COMMANDS", map[string]string{"code": "bad_request"},
				violations("commands", "No commands")),
			status: 400,
			body:   `{"success": false, "message": "No commands"}`,
		},
		{
			name: "bloomreach single command: errors", path: "/track/v2/projects/p/customers", method: http.MethodPost,
			err: serverError(t, codes.InvalidArgument, "At least one id should be specified.", "INVALID_ARGUMENT",
				map[string]string{"code": "bad_request"}, violations("customer_ids", "At least one id should be specified.")),
			status: 400,
			body:   `{"success": false, "errors": ["At least one id should be specified."]}`,
		},
		{
			name: "bloomreach single command with two errors: both", path: "/track/v2/projects/p/customers/events", method: http.MethodPost,
			err: serverError(t, codes.InvalidArgument, "At least one id should be specified. (and 1 more)", "INVALID_ARGUMENT",
				map[string]string{"code": "bad_request"}, violations(
					"customer_ids", "At least one id should be specified.", "event_type", "Field 'event_type' is required.")),
			status: 400,
			body:   `{"success": false, "errors": ["At least one id should be specified.", "Field 'event_type' is required."]}`,
		},
		{
			name: "bloomreach forbidden", path: "/track/v2/projects/other/system/time", method: http.MethodGet,
			err: serverError(t, codes.PermissionDenied, "The project token is not the key's.", "PROJECT_TOKEN_MISMATCH",
				map[string]string{"code": "not_authorized"}, violations("project_token", "must be the key's project")),
			status: 403,
			body:   `{"success": false, "errors": ["The project token is not the key's."]}`,
		},
		{
			name: "an error with no details at all (the backend is down)", path: "/v6/batches", method: http.MethodGet,
			err:    status.Error(codes.Unavailable, "connection refused"),
			status: 503,
			body: `{"unique_id": "ID", "http_status_code": 503, "code": "internal",
				"message": "connection refused", "parameters": {}}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, body := errorAnswer(t, c.method, c.path, c.err, nil)
			if code != c.status {
				t.Errorf("status %d, want %d", code, c.status)
			}
			if want := jsonOf(t, c.body); !reflect.DeepEqual(body, want) {
				got, _ := json.Marshal(body)
				t.Errorf("body\n %s\nwant\n %s", got, c.body)
			}
		})
	}
}

func TestA429HasRetryAfterAndTheRateLimitHeadersInTheAPIsEnvelope(t *testing.T) {
	trailers := metadata.Pairs("ratelimit-limit", "10", "ratelimit-remaining", "0", "ratelimit-reset", "7", "retry-after", "2")
	throttled := func(code string) error {
		return serverError(t, codes.ResourceExhausted, "Request was throttled. Expected available in 2 second(s).",
			"RATE_LIMITED", map[string]string{"code": code, "limit": "10"},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})
	}
	cases := []struct{ path, code, body string }{
		{"/api/event-bulk-create-jobs", "throttled", `{"errors": [{"id": "ID", "status": 429, "code": "throttled",
			"title": "Request was throttled.", "detail": "Request was throttled. Expected available in 2 second(s).",
			"source": {"pointer": "/data"}, "meta": {}}]}`},
		{"/v6/batches", "too_many_requests", `{"unique_id": "ID", "http_status_code": 429, "code": "too_many_requests",
			"message": "Request was throttled. Expected available in 2 second(s).", "parameters": {"limit": "10"}}`},
		{"/track/v2/projects/p/batch", "too_many_requests",
			`{"success": false, "message": "Request was throttled. Expected available in 2 second(s)."}`},
	}
	for _, c := range cases {
		code, headers, body := errorAnswer(t, http.MethodPost, c.path, throttled(c.code), trailers)
		if code != http.StatusTooManyRequests {
			t.Errorf("%s: status %d", c.path, code)
		}
		for name, want := range map[string]string{
			"Retry-After": "2", "RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "7",
		} {
			if got := headers.Get(name); got != want {
				t.Errorf("%s: %s %q, want %q", c.path, name, got, want)
			}
		}
		if want := jsonOf(t, c.body); !reflect.DeepEqual(body, want) {
			got, _ := json.Marshal(body)
			t.Errorf("%s: body\n %s\nwant\n %s", c.path, got, c.body)
		}
	}

	// Without the server's retry-after (never so today), RetryInfo says it,
	// rounded up to whole seconds as clients parse it.
	_, headers, _ := errorAnswer(t, http.MethodPost, "/v6/batches", throttled("too_many_requests"), nil)
	if got := headers.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After from RetryInfo = %q, want 2", got)
	}
}

func TestTheSidecarsOwnErrorsComeInTheEnvelopesToo(t *testing.T) {
	cases := []struct {
		name, method, path string
		err                error
		status             int
		body               string
	}{
		{
			name: "a klaviyo body that does not decode", method: http.MethodPost, path: "/api/event-bulk-create-jobs",
			err:    invalidField("/data/attributes", `Invalid JSON body at /data/attributes: unknown field "x"`),
			status: 400,
			body: `{"errors": [{"id": "ID", "status": 400, "code": "invalid", "title": "Invalid input.",
				"detail": "Invalid JSON body at /data/attributes: unknown field \"x\"",
				"source": {"pointer": "/data/attributes"}, "meta": {}}]}`,
		},
		{
			name: "an unknown route", method: http.MethodGet, path: "/v6/nothing",
			err:    routingError(httptest.NewRequest(http.MethodGet, "/v6/nothing", nil), http.StatusNotFound),
			status: 404,
			body: `{"unique_id": "ID", "http_status_code": 404, "code": "not_found",
				"message": "No such route: GET /v6/nothing", "parameters": {}}`,
		},
		{
			name: "a method the route does not take", method: http.MethodDelete, path: "/api/profiles",
			err:    routingError(httptest.NewRequest(http.MethodDelete, "/api/profiles", nil), http.StatusMethodNotAllowed),
			status: 405,
			body: `{"errors": [{"id": "ID", "status": 405, "code": "method_not_allowed", "title": "Method not allowed.",
				"detail": "The method is not allowed on this route: DELETE /api/profiles",
				"source": {"pointer": "/data"}, "meta": {}}]}`,
		},
		{
			name: "an upload that is not multipart", method: http.MethodPost, path: "/v6/files",
			err:    &clientError{reason: reasonInvalidArgument, field: "Content-Type", httpStatus: 415, upstream: "unsupported_media_type", message: "Not multipart."},
			status: 415,
			body: `{"unique_id": "ID", "http_status_code": 415, "code": "unsupported_media_type", "message": "Not multipart.",
				"parameters": {"field": "Content-Type", "description": "Not multipart.", "reason": "INVALID_ARGUMENT"}}`,
		},
		{
			name: "a tracking body over the limit", method: http.MethodPost, path: "/track/v2/projects/p/batch",
			err:    &clientError{reason: reasonPayloadTooLarge, field: "body", message: "The request body is larger than the maximum."},
			status: 400,
			body:   `{"success": false, "message": "The request body is larger than the maximum."}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, body := errorAnswer(t, c.method, c.path, c.err, nil)
			if code != c.status {
				t.Errorf("status %d, want %d", code, c.status)
			}
			if want := jsonOf(t, c.body); !reflect.DeepEqual(body, want) {
				got, _ := json.Marshal(body)
				t.Errorf("body\n %s\nwant\n %s", got, c.body)
			}
		})
	}
}

func TestAnEchoIsClippedInTheEnvelope(t *testing.T) {
	long := invalidField("/data/"+strings.Repeat("x", 1000), "bad: "+strings.Repeat("y", 1000))
	_, _, body := errorAnswer(t, http.MethodPost, "/api/event-bulk-create-jobs", long, nil)
	entry := body.(map[string]any)["errors"].([]any)[0].(map[string]any)
	pointer := entry["source"].(map[string]any)["pointer"].(string)
	if n := len([]rune(entry["detail"].(string))); n > maxEcho+1 {
		t.Errorf("detail of %d characters", n)
	}
	if n := len([]rune(pointer)); n > maxEcho+1 {
		t.Errorf("pointer of %d characters", n)
	}
}
