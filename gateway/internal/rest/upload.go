package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	batchesv6 "batchgrpc.invalid/gateway/gen/batchgrpc/batches/v6"
)

const (
	uploadMethod = "/batchgrpc.batches.v6.FileAssetService/UploadFileAsset"
	// Bytes per UploadFileAssetRequest chunk: what the server is tuned for.
	uploadChunk = 1 << 20
)

// uploadHandler serves POST /v6/files as upstream does, multipart/form-data
// with the file in the part named "file", streamed into UploadFileAsset a
// chunk at a time: the sidecar never holds the file. Form fields before the
// file set its metadata: "name" (default: the part's filename), "format"
// and "tags" (repeatable).
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

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func upload(
	ctx context.Context, r *http.Request, client batchesv6.FileAssetServiceClient, opts ...grpc.CallOption,
) (*batchesv6.UploadFileAssetResponse, error) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" {
		return nil, invalid("POST /v6/files takes multipart/form-data with the file in the part named \"file\"")
	}
	form, err := r.MultipartReader()
	if err != nil {
		return nil, invalid("multipart body: %v", err)
	}
	meta := &batchesv6.FileAssetMetadata{}
	for {
		part, err := form.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, invalid("the multipart body has no part named \"file\"")
		}
		if err != nil {
			return nil, invalid("multipart body: %v", err)
		}
		if part.FormName() == "file" {
			if meta.Name == "" {
				meta.Name = part.FileName()
			}
			return stream(ctx, client, meta, part, opts)
		}
		value, err := io.ReadAll(io.LimitReader(part, 4096))
		if err != nil {
			return nil, invalid("multipart field %q: %v", part.FormName(), err)
		}
		switch part.FormName() {
		case "name":
			meta.Name = string(value)
		case "format":
			format, ok := batchesv6.FileAsset_Format_value[string(value)]
			if !ok {
				return nil, invalid("format %q: one of CSV, PSV, JSON, JSONL", value)
			}
			meta.Format = batchesv6.FileAsset_Format(format)
		case "tags":
			meta.Tags = append(meta.Tags, string(value))
		case "request_id":
			meta.RequestId = string(value)
		default:
			return nil, invalid("unknown multipart field %q (name, format, tags, request_id, file)", part.FormName())
		}
	}
}

// stream sends the metadata, then the file in chunks, as it arrives.
func stream(
	ctx context.Context, client batchesv6.FileAssetServiceClient, meta *batchesv6.FileAssetMetadata,
	file io.Reader, opts []grpc.CallOption,
) (*batchesv6.UploadFileAssetResponse, error) {
	call, err := client.UploadFileAsset(ctx, opts...)
	if err != nil {
		return nil, err
	}
	first := &batchesv6.UploadFileAssetRequest{Content: &batchesv6.UploadFileAssetRequest_Metadata{Metadata: meta}}
	if err := call.Send(first); err != nil {
		return call.CloseAndRecv()
	}
	buf := make([]byte, uploadChunk)
	for {
		n, readErr := io.ReadFull(file, buf)
		if n > 0 {
			chunk := &batchesv6.UploadFileAssetRequest{Content: &batchesv6.UploadFileAssetRequest_Chunk{Chunk: buf[:n]}}
			if err := call.Send(chunk); err != nil {
				// The server ended the stream: its status says why.
				return call.CloseAndRecv()
			}
		}
		if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
			return call.CloseAndRecv()
		}
		if readErr != nil {
			return nil, fmt.Errorf("reading the uploaded file: %w", readErr)
		}
	}
}
