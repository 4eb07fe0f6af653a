package rest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	batchesv6 "batchgrpc.invalid/gateway/gen/batchgrpc/batches/v6"
	trackv2 "batchgrpc.invalid/gateway/gen/batchgrpc/track/v2"
)

// The sidecar's upload route in front of an in-process FileAssetService that
// records how each upload stream ended: half-closed by the sidecar (the
// server may store the file) or not (cancelled: the server discards it).

type seenUpload struct {
	meta *batchesv6.FileAssetMetadata
	size int
	// The sidecar half-closed the stream: the file is complete.
	completed bool
	err       error
}

type recordingFiles struct {
	batchesv6.UnimplementedFileAssetServiceServer
	seen chan seenUpload
	// How long the server takes to answer a complete upload.
	delay time.Duration
}

// slowTracking answers Batch after its delay.
type slowTracking struct {
	trackv2.UnimplementedTrackingServiceServer
	delay time.Duration
}

func (s *slowTracking) Batch(ctx context.Context, _ *trackv2.BatchRequest) (*trackv2.BatchResponse, error) {
	select {
	case <-time.After(s.delay):
		return &trackv2.BatchResponse{Success: true}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *recordingFiles) UploadFileAsset(
	stream grpc.ClientStreamingServer[batchesv6.UploadFileAssetRequest, batchesv6.UploadFileAssetResponse],
) error {
	var got seenUpload
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			got.completed = true
			s.seen <- got
			time.Sleep(s.delay)
			return stream.SendAndClose(&batchesv6.UploadFileAssetResponse{
				FileAsset: &batchesv6.FileAsset{Id: "file_1", Name: got.meta.GetName(), Size: int64(got.size)},
			})
		}
		if err != nil {
			got.err = err
			s.seen <- got
			return err
		}
		if meta := req.GetMetadata(); meta != nil {
			got.meta = meta
		}
		got.size += len(req.GetChunk())
	}
}

// await is how the server saw the next upload end (within a few seconds:
// a cancel travels as a RST_STREAM).
func (s *recordingFiles) await(t *testing.T) seenUpload {
	t.Helper()
	select {
	case got := <-s.seen:
		return got
	case <-time.After(5 * time.Second):
		t.Fatal("the server saw no upload end")
		return seenUpload{}
	}
}

func (s *recordingFiles) none(t *testing.T) {
	t.Helper()
	select {
	case got := <-s.seen:
		t.Fatalf("the server saw an upload: %+v", got)
	case <-time.After(100 * time.Millisecond):
	}
}

type testGateway struct {
	addr  string
	files *recordingFiles
}

// backendDelay: how long the server takes to answer a complete upload or
// a tracking batch.
func newTestGateway(t *testing.T, opts Options, backendDelay ...time.Duration) *testGateway {
	t.Helper()
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	files := &recordingFiles{seen: make(chan seenUpload, 16)}
	tracking := &slowTracking{}
	if len(backendDelay) > 0 {
		files.delay, tracking.delay = backendDelay[0], backendDelay[0]
	}
	batchesv6.RegisterFileAssetServiceServer(server, files)
	trackv2.RegisterTrackingServiceServer(server, tracking)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	handler, err := Handler(context.Background(), conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(handler)
	t.Cleanup(web.Close)
	return &testGateway{addr: strings.TrimPrefix(web.URL, "http://"), files: files}
}

const boundary = "test-boundary-0c1d"

func formField(name, value string) string {
	return fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", boundary, name, value)
}

func filePart(content string) string {
	return fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"people.csv\"\r\n\r\n%s",
		boundary, content)
}

var closing = "\r\n--" + boundary + "--\r\n"

// bigFile is more than two of the sidecar's 1 MiB chunks.
var bigFile = "id,email\n" + strings.Repeat("1,ann@example.com\n", 150_000)

type answer struct {
	status int
	body   map[string]any
}

// reason reads an Extole error body (the upload's API): the reason of the
// field at fault, upstream's code and the field.
func (a answer) reason(t *testing.T) (reason, code, field string) {
	t.Helper()
	parameters, _ := a.body["parameters"].(map[string]any)
	if a.body["http_status_code"] != float64(a.status) || parameters == nil {
		t.Errorf("not an Extole error body: %d %v", a.status, a.body)
		return "", "", ""
	}
	reason, _ = parameters["reason"].(string)
	code, _ = a.body["code"].(string)
	field, _ = parameters["field"].(string)
	return reason, code, field
}

// post sends the request head and then body as raw bytes (contentLength < 0:
// the length of body) and reads the answer. Pass stall to hold the
// connection open after the body without sending more.
func (g *testGateway) post(t *testing.T, path, contentType, body string, contentLength int) answer {
	t.Helper()
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if contentLength < 0 {
		contentLength = len(body)
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		path, contentType, contentLength)
	go func() { _, _ = io.WriteString(conn, head+body) }()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var decoded map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&decoded); err != nil {
		t.Fatalf("answer %d: %v", resp.StatusCode, err)
	}
	return answer{resp.StatusCode, decoded}
}

func (g *testGateway) upload(t *testing.T, body string) answer {
	t.Helper()
	return g.post(t, "/v6/files", "multipart/form-data; boundary="+boundary, body, -1)
}

func TestAWholeFormHalfClosesTheStreamWithEveryByte(t *testing.T) {
	g := newTestGateway(t, Options{})
	got := g.upload(t, formField("tags", "q4")+formField("tags", "rest")+filePart(bigFile)+closing)
	if got.status != http.StatusOK {
		t.Fatalf("status %d: %v", got.status, got.body)
	}
	seen := g.files.await(t)
	if !seen.completed || seen.size != len(bigFile) || seen.meta.GetName() != "people.csv" {
		t.Fatalf("seen %+v", seen)
	}
	if tags := seen.meta.GetTags(); len(tags) != 2 || tags[0] != "q4" || tags[1] != "rest" {
		t.Fatalf("tags %v", tags)
	}
}

func TestABodyThatEndsBeforeTheClosingBoundaryCancelsTheStream(t *testing.T) {
	for name, body := range map[string]string{
		"inside the file":          filePart(bigFile),
		"without the closing dash": filePart(bigFile) + "\r\n--" + boundary,
		"one closing dash":         filePart(bigFile) + "\r\n--" + boundary + "-",
		"delimiter, then nothing":  filePart(bigFile) + "\r\n--" + boundary + "\r\n",
		"a part header, no blank":  filePart(bigFile) + "\r\n--" + boundary + "\r\nContent-Type: text/plain\r\n",
		"a short file":             filePart("a,b\n1,2\n"),
	} {
		t.Run(name, func(t *testing.T) {
			g := newTestGateway(t, Options{})
			got := g.upload(t, body)
			reason, code, field := got.reason(t)
			if got.status != http.StatusBadRequest || reason != "INVALID_ARGUMENT" || code != "invalid_parameter" ||
				field != "file" || !strings.Contains(got.body["message"].(string), "closing boundary") {
				t.Fatalf("answer %d %v", got.status, got.body)
			}
			if seen := g.files.await(t); seen.completed || status.Code(seen.err) != codes.Canceled {
				t.Fatalf("the stream was not cancelled: %+v", seen)
			}
		})
	}
}

func TestABodyThatEndsInsideAFieldOpensNoStream(t *testing.T) {
	g := newTestGateway(t, Options{})
	got := g.upload(t, formField("tags", "q4")+"--"+boundary+"\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nha")
	if reason, _, field := got.reason(t); got.status != http.StatusBadRequest || reason != "INVALID_ARGUMENT" ||
		field != "name" {
		t.Fatalf("answer %d %v", got.status, got.body)
	}
	g.files.none(t)
}

func TestAPartAfterTheFileCancelsTheStreamAndIsNamed(t *testing.T) {
	for part, after := range map[string]string{
		"file":   filePart("9,nine"),
		"tags":   formField("tags", "late"),
		"colour": formField("colour", "red"),
	} {
		t.Run(part, func(t *testing.T) {
			g := newTestGateway(t, Options{})
			got := g.upload(t, filePart(bigFile)+"\r\n"+strings.TrimSuffix(after, "\r\n")+closing)
			reason, _, field := got.reason(t)
			message := got.body["message"].(string)
			if got.status != http.StatusBadRequest || reason != "INVALID_ARGUMENT" || field != part ||
				!strings.Contains(message, fmt.Sprintf("%q", part)) {
				t.Fatalf("answer %d %v", got.status, got.body)
			}
			if seen := g.files.await(t); seen.completed {
				t.Fatalf("the stream was half-closed: %+v", seen)
			}
		})
	}
}

func TestFormFieldLimits(t *testing.T) {
	manyTags := ""
	for i := range 101 {
		manyTags += formField("tags", fmt.Sprintf("t%d", i))
	}
	for name, tc := range map[string]struct{ fields, reason, field string }{
		"a name of 256":       {formField("name", strings.Repeat("n", 256)), "INVALID_ARGUMENT", "name"},
		"a tag of 256":        {formField("tags", strings.Repeat("t", 256)), "INVALID_ARGUMENT", "tags[0]"},
		"an empty tag":        {formField("tags", "a") + formField("tags", ""), "INVALID_ARGUMENT", "tags[1]"},
		"101 tags":            {manyTags, "TOO_MANY_ITEMS", "tags"},
		"NUL in a name":       {formField("name", "a\x00b"), "INVALID_ARGUMENT", "name"},
		"a name not UTF-8":    {formField("name", "\xff.csv"), "INVALID_ARGUMENT", "name"},
		"two names":           {formField("name", "a") + formField("name", "b"), "INVALID_ARGUMENT", "name"},
		"a request_id of 129": {formField("request_id", strings.Repeat("r", 129)), "INVALID_ARGUMENT", "request_id"},
		"an unknown format":   {formField("format", "XLSX"), "INVALID_ARGUMENT", "format"},
		"a field over 64 KiB": {formField("tags", strings.Repeat("t", 64<<10+1)), "PAYLOAD_TOO_LARGE", "tags"},
		"an unknown field":    {formField("colour", "red"), "INVALID_ARGUMENT", "colour"},
		"a part header of 2 MiB": {
			"--" + boundary + "\r\nContent-Disposition: form-data; name=\"name\"\r\nX-Pad: " +
				strings.Repeat("p", 2<<20) + "\r\n\r\na\r\n", "PAYLOAD_TOO_LARGE", "body",
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := newTestGateway(t, Options{})
			got := g.upload(t, tc.fields+filePart("a,b\n")+closing)
			if reason, code, field := got.reason(t); got.status != http.StatusBadRequest || reason != tc.reason ||
				code != "invalid_parameter" || field != tc.field {
				t.Fatalf("answer %d %v", got.status, got.body)
			}
			g.files.none(t)
		})
	}
	g := newTestGateway(t, Options{})
	fields := formField("name", strings.Repeat("é", 255))
	for i := range 100 {
		fields += formField("tags", fmt.Sprintf("t%d", i))
	}
	if got := g.upload(t, fields+filePart("a,b\n")+closing); got.status != http.StatusOK {
		t.Fatalf("at the limits: %d %v", got.status, got.body)
	}
	if seen := g.files.await(t); !seen.completed || len(seen.meta.GetTags()) != 100 {
		t.Fatalf("seen %+v", seen)
	}
}

func TestAnIdleUploadIsAbandonedWith408(t *testing.T) {
	g := newTestGateway(t, Options{BodyIdleTimeout: 200 * time.Millisecond})
	body := filePart(bigFile)
	started := time.Now()
	got := g.post(t, "/v6/files", "multipart/form-data; boundary="+boundary, body, 2*len(body))
	if elapsed := time.Since(started); elapsed > 3*time.Second {
		t.Fatalf("answered after %v", elapsed)
	}
	if reason, _, field := got.reason(t); got.status != http.StatusRequestTimeout || reason != "INVALID_ARGUMENT" ||
		field != "file" {
		t.Fatalf("answer %d %v", got.status, got.body)
	}
	if seen := g.files.await(t); seen.completed {
		t.Fatalf("the stream was half-closed: %+v", seen)
	}
}

func TestTheIdleTimeoutCountsTheClientNotTheServer(t *testing.T) {
	// The whole body is in; the server takes longer than the idle timeout
	// to answer, and the call goes on.
	g := newTestGateway(t, Options{BodyIdleTimeout: 200 * time.Millisecond}, 700*time.Millisecond)
	if got := g.upload(t, filePart(bigFile)+closing); got.status != http.StatusOK {
		t.Fatalf("upload: %d %v", got.status, got.body)
	}
	got := g.post(t, "/track/v2/projects/default/batch", "application/json", `{"commands": []}`, -1)
	if got.status != http.StatusOK || got.body["success"] != true {
		t.Fatalf("batch: %d %v", got.status, got.body)
	}
}

func TestAnIdleJSONBodyIsAbandonedWith408(t *testing.T) {
	g := newTestGateway(t, Options{BodyIdleTimeout: 200 * time.Millisecond})
	got := g.post(t, "/v6/batches", "application/json", `{"name": "`, 100)
	if reason, code, field := got.reason(t); got.status != http.StatusRequestTimeout || reason != "INVALID_ARGUMENT" ||
		code != "invalid_parameter" || field != "body" {
		t.Fatalf("answer %d %v", got.status, got.body)
	}
}

func TestAJSONBodyOverTheLimitIsPayloadTooLarge(t *testing.T) {
	g := newTestGateway(t, Options{MaxBodyBytes: 1000})
	for _, length := range []int{1001, -1} {
		body := `{"name": "` + strings.Repeat("y", 2000) + `"}`
		got := g.post(t, "/v6/batches", "application/json", body, length)
		if reason, _, field := got.reason(t); got.status != http.StatusBadRequest || reason != "PAYLOAD_TOO_LARGE" ||
			field != "body" {
			t.Fatalf("answer %d %v", got.status, got.body)
		}
	}
}

func TestFormBodySeesTheClosingBoundary(t *testing.T) {
	for body, want := range map[string]bool{
		"--B--":                                                   true,
		"--B\r\n\r\nabc\r\n--B--":                                 true,
		"--B\r\n\r\nabc\r\n--B--\r\nepilogue":                     true,
		"--B\r\n\r\nabc\r\n--B\r\n":                               false,
		"--B\r\n\r\nabc\r\n--B":                                   false,
		"--B\r\n\r\nabc\r\n--B-":                                  false,
		"--B\r\n\r\nx--B--abc\r\n--B\r\n\r\nz":                    false,
		"--B\r\n\r\n" + strings.Repeat("x", 20_000) + "\r\n--B--": true,
	} {
		b := newFormBody(strings.NewReader(body), "B")
		b.left = -1
		buf := make([]byte, 4096)
		for {
			if _, err := b.Read(buf); err != nil {
				break
			}
		}
		if got := b.sawFinal(); got != want {
			t.Errorf("%q: sawFinal %v, want %v", body[max(0, len(body)-30):], got, want)
		}
	}
}

func TestFormBodyCountsTheFormAgainstItsLimit(t *testing.T) {
	b := newFormBody(strings.NewReader(strings.Repeat("x", maxFormBytes+10)), "B")
	_, err := io.Copy(io.Discard, b)
	if !errors.Is(err, errTooLarge) || !b.over {
		t.Fatalf("err %v over %v", err, b.over)
	}
}
