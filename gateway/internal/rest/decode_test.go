package rest

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	batchesv6 "batchgrpc.invalid/gateway/gen/batchgrpc/batches/v6"
	eventsv1 "batchgrpc.invalid/gateway/gen/batchgrpc/events/v1"
	trackv2 "batchgrpc.invalid/gateway/gen/batchgrpc/track/v2"
)

func decodeInto(t *testing.T, pointers bool, body string, msg proto.Message) *clientError {
	t.Helper()
	state := &bodyState{}
	reader := &guardedBody{body: io.NopCloser(strings.NewReader(body)), left: -1, length: -1, state: state, pointers: pointers}
	decoder := (&jsonBody{&runtime.JSONPb{UnmarshalOptions: protojson.UnmarshalOptions{}}}).NewDecoder(reader)
	if err := decoder.Decode(msg); err == nil || err == io.EOF {
		return nil
	}
	if state.decode == nil {
		t.Fatalf("%s: no decode error kept", body)
	}
	return state.decode
}

func TestADecodeErrorNamesTheFieldAsTheAPIDoes(t *testing.T) {
	for _, tc := range []struct {
		body     string
		msg      proto.Message
		pointers bool
		field    string
	}{
		{`{"commands": [`, &trackv2.BatchRequest{}, false, "body"},
		{`{"commands": "x"}`, &trackv2.BatchRequest{}, false, "commands"},
		{`{"commands": [{"name": "a"}, {"nmae": "b"}]}`, &trackv2.BatchRequest{}, false, "commands[1].nmae"},
		{"{\n  \"commands\": [\n    {\"name\": \"a\", \"commnd_id\": 1}]}", &trackv2.BatchRequest{}, false,
			"commands[0].commnd_id"},
		{`{"commands": []} {"x": 1}`, &trackv2.BatchRequest{}, false, "body"},
		{`{"customer_ids": 3}`, &trackv2.UpdateCustomerPropertiesRequest{}, false, "customer_ids"},
		{`{"name": "é", "data_source": {"type": "NOPE"}}`, &batchesv6.CreateBatchJobRequest{}, false, "data_source.type"},
		{`{"name": "a", "name": "b"}`, &batchesv6.CreateBatchJobRequest{}, false, "name"},
		{`{'name': 1}`, &batchesv6.CreateBatchJobRequest{}, false, "body"},
		{`{"data": {"type": 7}}`, &eventsv1.CreateEventBulkCreateJobRequest{}, true, "/data/type"},
		{`{"data": {"attributes": {"events-bulk-create": {"data": [{}, {"atributes": {}}]}}}}`,
			&eventsv1.CreateEventBulkCreateJobRequest{}, true, "/data/attributes/events-bulk-create/data/1/atributes"},
	} {
		got := decodeInto(t, tc.pointers, tc.body, tc.msg)
		if got == nil || got.field != tc.field || got.reason != reasonInvalidArgument {
			t.Errorf("%s: %+v, want field %q", tc.body, got, tc.field)
		}
	}
	if got := decodeInto(t, false, "  \n", &trackv2.BatchRequest{}); got != nil {
		t.Errorf("an empty body is an empty request: %+v", got)
	}
}

func TestFormatPathEscapesPointerTokens(t *testing.T) {
	path := []segment{{key: "a/b", isKey: true}, {index: 2}, {key: "c~d", isKey: true}}
	if got := formatPath(path, true); got != "/a~1b/2/c~0d" {
		t.Errorf("pointer %q", got)
	}
	if got := formatPath(path, false); got != "a/b[2].c~d" {
		t.Errorf("dotted %q", got)
	}
}

func TestClipKeepsAtMost256Characters(t *testing.T) {
	if got := clip(strings.Repeat("é", 300)); utf8.RuneCountInString(got) != maxEcho+1 || !strings.HasSuffix(got, "…") {
		t.Errorf("clip: %d characters", utf8.RuneCountInString(got))
	}
	if got := clip("short"); got != "short" {
		t.Errorf("clip(short) = %q", got)
	}
	if got := clip("a\xffb"); !utf8.ValidString(got) {
		t.Errorf("clip keeps invalid UTF-8: %q", got)
	}
}

func infoOf(t *testing.T, err error) (*errdetails.ErrorInfo, *errdetails.BadRequest, *status.Status) {
	t.Helper()
	s := status.Convert(err)
	var info *errdetails.ErrorInfo
	var bad *errdetails.BadRequest
	for _, d := range s.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			bad = d
		}
	}
	if info == nil || info.GetDomain() != "batchgrpc" {
		t.Fatalf("no ErrorInfo: %v", s)
	}
	return info, bad, s
}

func TestEnrichGivesTheSidecarsErrorsTheServersDetails(t *testing.T) {
	long := strings.Repeat("7", 5000)
	for _, tc := range []struct {
		path, reason, code, field string
		err                       error
	}{
		{"/v6/batches", "INVALID_ARGUMENT", "invalid_parameter", "page_size",
			status.Errorf(codes.InvalidArgument, `parsing field "page_size": strconv.ParseInt: parsing %q: invalid syntax`, long)},
		{"/track/v2/projects/p/batch", "INVALID_ARGUMENT", "bad_request", "project_token",
			status.Errorf(codes.InvalidArgument, "missing parameter %s", "project_token")},
		{"/api/profiles", "INVALID_ARGUMENT", "invalid", "", status.Error(codes.InvalidArgument, "Bad Request")},
		{"/nowhere", "NOT_FOUND", "not_found", "", status.Error(codes.NotFound, "Not Found")},
		{"/v6/files", "INTERNAL", "internal", "", status.Error(codes.Unavailable, "connection refused")},
		{"/v6/files", "PAYLOAD_TOO_LARGE", "invalid_parameter", "tags",
			&clientError{reason: reasonPayloadTooLarge, field: "tags", message: "too large"}},
	} {
		r := httptest.NewRequest("GET", tc.path, nil)
		info, bad, s := infoOf(t, enrich(r, tc.err))
		if info.GetReason() != tc.reason || info.GetMetadata()["code"] != tc.code {
			t.Errorf("%s: %v", tc.path, info)
		}
		if field := bad.GetFieldViolations(); (tc.field == "") != (len(field) == 0) ||
			(len(field) > 0 && field[0].GetField() != tc.field) {
			t.Errorf("%s: %v", tc.path, bad)
		}
		if strings.Contains(s.Message(), long[:maxEcho+1]) {
			t.Errorf("%s: the message echoes more than %d characters", tc.path, maxEcho)
		}
	}
	// The server's own errors pass unchanged.
	server, _ := status.New(codes.InvalidArgument, "No commands").WithDetails(&errdetails.ErrorInfo{Reason: "NO_COMMANDS"})
	if got := enrich(httptest.NewRequest("GET", "/track/v2/x", nil), server.Err()); status.Convert(got).Details()[0].(*errdetails.ErrorInfo).GetReason() != "NO_COMMANDS" {
		t.Errorf("the server's error changed: %v", got)
	}
}

func TestADecodeErrorSaysTheSameWhicheverPrefixProtobufGoChose(t *testing.T) {
	// protobuf-go prefixes its errors with "proto: " or "proto:\u00a0",
	// chosen by the binary's hash: a rebuild may switch.
	for _, prefix := range []string{"proto: ", "proto:\u00a0"} {
		got := decodeError([]byte(`{"a"`), errors.New(prefix+"unexpected EOF"), false)
		if want := "Invalid JSON body at body: unexpected EOF"; got.message != want {
			t.Errorf("%q: %q, want %q", prefix, got.message, want)
		}
	}
}
