package rest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	batchesv6 "batchgrpc.invalid/gateway/gen/batchgrpc/batches/v6"
)

const (
	uploadMethod = "/batchgrpc.batches.v6.FileAssetService/UploadFileAsset"
	// Bytes per UploadFileAssetRequest chunk: what the server is tuned for.
	uploadChunk = 1 << 20
	// The most bytes of one form field's value.
	maxFieldBytes = 64 << 10
	// The most bytes before the file's content (form fields and every part
	// header) and after it (up to the closing boundary): multipart headers
	// are buffered whole, so they need a bound of their own.
	maxFormBytes = 1 << 20
	// API.md's limits on the metadata (the server checks them too).
	maxLabel     = 255
	maxTags      = 100
	maxRequestID = 128
)

// uploadHandler serves POST /v6/files as upstream does, multipart/form-data
// with the file in the part named "file", streamed into UploadFileAsset a
// chunk at a time: the sidecar never holds the file. Form fields before the
// file set its metadata: "name" (default: the part's filename), "format",
// "tags" (repeatable) and "request_id". Nothing may follow the file but the
// closing boundary: a body that ends before it, or a part after the file,
// cancels the stream, and the server stores nothing.
func uploadHandler(mux *runtime.ServeMux, client batchesv6.FileAssetServiceClient) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		_, outbound := runtime.MarshalerForRequest(mux, r)
		ctx, err := runtime.AnnotateContext(r.Context(), mux, r, uploadMethod, runtime.WithHTTPPathPattern("/v6/files"))
		if err != nil {
			runtime.HTTPError(r.Context(), mux, outbound, w, r, err)
			return
		}
		var header, trailer metadata.MD
		resp, err := upload(ctx, r, client, grpc.Header(&header), grpc.Trailer(&trailer))
		ctx = runtime.NewServerMetadataContext(ctx, runtime.ServerMetadata{HeaderMD: header, TrailerMD: trailer})
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		// response_body: the bare file asset, like the JSON route.
		runtime.ForwardResponseMessage(ctx, mux, outbound, w, r, resp.GetFileAsset(), mux.GetForwardResponseOptions()...)
	}
}

func upload(
	ctx context.Context, r *http.Request, client batchesv6.FileAssetServiceClient, opts ...grpc.CallOption,
) (*batchesv6.UploadFileAssetResponse, error) {
	form, err := newUploadForm(r)
	if err != nil {
		return nil, err
	}
	file, err := form.fields()
	if err != nil {
		return nil, err
	}
	return form.stream(ctx, client, file, opts)
}

// uploadForm reads a multipart upload: its fields, then the file.
type uploadForm struct {
	parts *multipart.Reader
	body  *formBody
	state *bodyState
	meta  *batchesv6.FileAssetMetadata
	seen  map[string]bool
}

func newUploadForm(r *http.Request) (*uploadForm, error) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		return nil, &clientError{
			reason: reasonInvalidArgument, field: "Content-Type",
			httpStatus: http.StatusUnsupportedMediaType, upstream: "unsupported_media_type",
			message: "POST /v6/files takes multipart/form-data (with a boundary) with the file in the part named \"file\".",
		}
	}
	body := newFormBody(r.Body, params["boundary"])
	state := stateOf(r)
	if state == nil {
		state = &bodyState{}
	}
	return &uploadForm{
		parts: multipart.NewReader(body, params["boundary"]),
		body:  body,
		state: state,
		meta:  &batchesv6.FileAssetMetadata{},
		seen:  map[string]bool{},
	}, nil
}

// fields reads the form fields up to the part named "file" and returns it.
func (f *uploadForm) fields() (*multipart.Part, error) {
	for {
		part, err := f.parts.NextPart()
		if err == io.EOF && (f.body.sawFinal() || !f.body.eof) {
			return nil, invalidField("file", "The multipart body has no part named \"file\".")
		}
		if err != nil {
			return nil, f.broken(err, "body")
		}
		name := part.FormName()
		if name == "file" {
			if f.meta.Name == "" {
				if err := checkText("file", "The file name", part.FileName(), maxLabel); err != nil {
					return nil, err
				}
				f.meta.Name = part.FileName()
			}
			// The file's content has no limit here (the server has one).
			f.body.left = -1
			return part, nil
		}
		if err := f.field(name, part); err != nil {
			return nil, err
		}
	}
}

// field reads one form field before the file into the metadata.
func (f *uploadForm) field(name string, part *multipart.Part) error {
	switch name {
	case "name", "format", "request_id":
		if f.seen[name] {
			return invalidField(name, fmt.Sprintf("The form field %q is given twice.", name))
		}
		f.seen[name] = true
	case "tags":
		if len(f.meta.Tags) == maxTags {
			return &clientError{
				reason: reasonTooManyItems, field: "tags",
				message: fmt.Sprintf("At most %d tags: the form has more.", maxTags),
			}
		}
	default:
		return invalidField(name, fmt.Sprintf(
			"The form has an unknown multipart field %q (name, format, tags, request_id, file).", name))
	}
	raw, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
	if err != nil {
		return f.broken(err, name)
	}
	if len(raw) > maxFieldBytes {
		return &clientError{
			reason: reasonPayloadTooLarge, field: name,
			message: fmt.Sprintf("The form field %q is larger than %d bytes.", name, maxFieldBytes),
		}
	}
	value := string(raw)
	switch name {
	case "name":
		if err := checkText("name", "name", value, maxLabel); err != nil {
			return err
		}
		f.meta.Name = value
	case "tags":
		field := fmt.Sprintf("tags[%d]", len(f.meta.Tags))
		if err := checkText(field, "Each tag", value, maxLabel); err != nil {
			return err
		}
		if value == "" {
			return invalidField(field, "Each tag should have a value, max length 255.")
		}
		f.meta.Tags = append(f.meta.Tags, value)
	case "request_id":
		if err := checkText("request_id", "request_id", value, maxRequestID); err != nil {
			return err
		}
		f.meta.RequestId = value
	case "format":
		format, ok := batchesv6.FileAsset_Format_value[value]
		if !ok || format == 0 {
			return invalidField("format", fmt.Sprintf("The format %q is not one of CSV, PSV, JSON, JSONL.", value))
		}
		f.meta.Format = batchesv6.FileAsset_Format(format)
	}
	return nil
}

// checkText applies API.md's rules for a name: UTF-8, no NUL, at most max
// characters.
func checkText(field, what, value string, max int) error {
	switch {
	case !utf8.ValidString(value):
		return invalidField(field, what+" is not UTF-8 text.")
	case strings.IndexByte(value, 0) >= 0:
		return invalidField(field, what+" must not contain NUL characters.")
	case utf8.RuneCountInString(value) > max:
		return invalidField(field, fmt.Sprintf("%s should have a value, max length %d.", what, max))
	}
	return nil
}

// stream sends the metadata, then the file in chunks as it arrives. Only a
// body that ends cleanly after the file half-closes the call; anything else
// cancels it, so that the server discards what it received.
func (f *uploadForm) stream(
	ctx context.Context, client batchesv6.FileAssetServiceClient, file io.Reader, opts []grpc.CallOption,
) (*batchesv6.UploadFileAssetResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	call, err := client.UploadFileAsset(ctx, opts...)
	if err != nil {
		return nil, err
	}
	first := &batchesv6.UploadFileAssetRequest{Content: &batchesv6.UploadFileAssetRequest_Metadata{Metadata: f.meta}}
	if err := call.Send(first); err != nil {
		// The server ended the stream: its status says why.
		return call.CloseAndRecv()
	}
	buf := make([]byte, uploadChunk)
	for {
		n, readErr := fill(file, buf)
		if readErr != nil && readErr != io.EOF {
			cancel()
			return nil, f.broken(readErr, "file")
		}
		if n > 0 {
			chunk := &batchesv6.UploadFileAssetRequest{Content: &batchesv6.UploadFileAssetRequest_Chunk{Chunk: buf[:n]}}
			if err := call.Send(chunk); err != nil {
				return call.CloseAndRecv()
			}
		}
		if readErr == io.EOF {
			if err := f.end(); err != nil {
				cancel()
				return nil, err
			}
			return call.CloseAndRecv()
		}
	}
}

// fill reads into buf until it is full or the reader ends (io.EOF, with
// the bytes read) or fails.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// end checks that the file is followed by the closing boundary only.
func (f *uploadForm) end() error {
	f.body.left = maxFormBytes
	part, err := f.parts.NextPart()
	switch {
	case err == nil && part.FormName() == "file":
		return invalidField("file", "A second part named \"file\": an upload takes one file.")
	case err == nil:
		name := part.FormName()
		return invalidField(name, fmt.Sprintf(
			"The part %q comes after the file: form fields go before the part named \"file\".", name))
	case err != io.EOF || !f.body.sawFinal():
		return f.broken(err, "file")
	}
	return nil
}

// broken is the error for a multipart body that cannot be read on: it
// stalled, its fields are too large, it ends before its closing boundary,
// or it is not multipart.
func (f *uploadForm) broken(err error, field string) error {
	switch {
	case f.state.idle:
		return &clientError{
			reason: reasonInvalidArgument, field: field, httpStatus: http.StatusRequestTimeout,
			message: fmt.Sprintf(
				"The upload sent no byte for %s: it is abandoned and nothing is stored.", f.state.idleTimeout),
		}
	case f.body.over:
		return &clientError{
			reason: reasonPayloadTooLarge, field: "body",
			message: fmt.Sprintf("The form fields and part headers around the file exceed %d bytes.", maxFormBytes),
		}
	case f.body.eof:
		return invalidField(field, "The multipart body ends before its closing boundary: nothing is stored.")
	}
	return invalidField(field, "The multipart body is malformed: "+err.Error())
}

// formBody is the request body as the multipart reader reads it: it counts
// the bytes outside the file against maxFormBytes, notes the end of the
// body, and keeps the last bytes read, to tell a form that ends with its
// closing boundary from one cut short after a delimiter line (the
// multipart reader reports a clean end for both).
type formBody struct {
	r        io.Reader
	left     int64  // -1: no limit (the file's content)
	boundary []byte // "--" and the boundary
	tail     []byte
	total    int64
	over     bool
	eof      bool
}

func newFormBody(r io.Reader, boundary string) *formBody {
	return &formBody{r: r, left: maxFormBytes, boundary: []byte("--" + boundary)}
}

// The multipart reader reads 4 KiB at a time, and stops at the closing
// boundary: it is in the last read, or straddles it and the one before.
func (b *formBody) tailBytes() int { return 8<<10 + 2*len(b.boundary) }

func (b *formBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		b.over = true
		return 0, errTooLarge
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	b.total += int64(n)
	keep := b.tailBytes()
	if len(b.tail)+n > keep {
		drop := min(len(b.tail), len(b.tail)+n-keep)
		b.tail = append(b.tail[:0], b.tail[drop:]...)
	}
	b.tail = append(b.tail, p[max(0, n-keep):n]...)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// sawFinal reports whether the form's last delimiter is the closing one
// ("--boundary--"): a part's content cannot hold a delimiter, so the last
// one read is the one the multipart reader stopped at.
func (b *formBody) sawFinal() bool {
	delimiter := append([]byte("\n"), b.boundary...)
	var after []byte
	if i := bytes.LastIndex(b.tail, delimiter); i >= 0 {
		after = b.tail[i+len(delimiter):]
	} else if b.total == int64(len(b.tail)) && bytes.HasPrefix(b.tail, b.boundary) {
		// The body's first line, with no line break before it.
		after = b.tail[len(b.boundary):]
	}
	return bytes.HasPrefix(after, []byte("--"))
}
