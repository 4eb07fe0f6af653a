package rest

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The JSON of responses uses proto field names (snake_case, as upstream),
// except where a field's json_name holds upstream's own spelling that no
// proto name can have: `_kx`. protojson has no option for "proto names, but
// json_name where one is given", so the few responses that contain such a
// field are renamed here. Here too go the fields that upstream leaves out
// when they are empty (omitWhenEmpty): protojson emits every field
// (EmitUnpopulated, for a result's "success": false and counts of 0), and
// gRPC answers keep them. Every other response passes untouched.

// omitWhenEmpty are the fields that upstream's JSON leaves out when empty:
// Bloomreach's batch results carry "errors" only when a command failed
// (upstream-apis.md C.3; the single routes keep their "errors": []), and
// Extole's job record has these optional members (A.3), absent until the
// job has them.
var omitWhenEmpty = map[protoreflect.FullName]bool{
	"batchgrpc.track.v2.CommandResult.errors":      true,
	"batchgrpc.batches.v6.BatchJob.event_name":     true,
	"batchgrpc.batches.v6.BatchJob.started_time":   true,
	"batchgrpc.batches.v6.BatchJob.completed_time": true,
	"batchgrpc.batches.v6.BatchJob.error_code":     true,
	"batchgrpc.batches.v6.BatchJob.error_message":  true,
	"batchgrpc.batches.v6.BatchJob.debug_message":  true,
}

// reshaped reports whether a field's JSON differs from protojson's.
func reshaped(fd protoreflect.FieldDescriptor) bool {
	return hasUpstreamSpelling(fd) || omitWhenEmpty[fd.FullName()]
}

func isEmpty(value any) bool {
	switch v := value.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// responseBody is what grpc-gateway's wrappers for `response_body` routes
// implement: the part of the response that is the HTTP body.
type responseBody interface {
	XXX_ResponseBody() any
}

func upstreamNames(marshal protojson.MarshalOptions) func(context.Context, proto.Message) (any, error) {
	return func(ctx context.Context, resp proto.Message) (any, error) {
		msg := resp
		if rb, ok := resp.(responseBody); ok {
			body, isMessage := rb.XXX_ResponseBody().(proto.Message)
			if !isMessage {
				return resp, nil
			}
			msg = body
		}
		if view := readViewOf(ctx); view != nil {
			// Klaviyo's read routes answer JSON:API documents (jsonapi.go).
			return view.document(msg)
		}
		if msg == nil || !hasUpstreamName(msg.ProtoReflect().Descriptor()) {
			return resp, nil
		}
		raw, err := marshal.Marshal(msg)
		if err != nil {
			return nil, err
		}
		var tree any
		if err := json.Unmarshal(raw, &tree); err != nil {
			return nil, err
		}
		rename(msg.ProtoReflect(), tree)
		return tree, nil
	}
}

// hasUpstreamSpelling reports whether a field's json_name was given in the
// proto: it differs from the lowerCamelCase protoc derives from the name
// (descriptors carry a json_name for every field, so presence says nothing).
func hasUpstreamSpelling(fd protoreflect.FieldDescriptor) bool {
	return fd.JSONName() != lowerCamel(string(fd.Name()))
}

// lowerCamel is protoc's default json_name: underscores dropped, the letter
// after each one upper-cased.
func lowerCamel(name string) string {
	var b strings.Builder
	upper := false
	for _, r := range name {
		switch {
		case r == '_':
			upper = true
		case upper:
			b.WriteRune(unicode.ToUpper(r))
			upper = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

var upstreamNameCache sync.Map // protoreflect.FullName -> bool

// hasUpstreamName reports whether a message, or one nested in it, has a
// field with an explicit json_name or omitted when empty.
func hasUpstreamName(md protoreflect.MessageDescriptor) bool {
	if cached, ok := upstreamNameCache.Load(md.FullName()); ok {
		return cached.(bool)
	}
	found := searchUpstreamName(md, map[protoreflect.FullName]bool{})
	upstreamNameCache.Store(md.FullName(), found)
	return found
}

func searchUpstreamName(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false // a recursive message: its fields are being searched already
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if reshaped(fd) || (fd.Message() != nil && !fd.IsMap() && searchUpstreamName(fd.Message(), seen)) {
			return true
		}
	}
	return false
}

// rename walks the JSON of m, drops the empty fields of omitWhenEmpty and
// renames each field with an explicit json_name from its proto name to that
// json_name.
func rename(m protoreflect.Message, tree any) {
	obj, ok := tree.(map[string]any)
	if !ok || m.Descriptor().FullName().Parent() == "google.protobuf" {
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		name := string(fd.Name())
		value, present := obj[name]
		if !present {
			continue
		}
		if omitWhenEmpty[fd.FullName()] && isEmpty(value) {
			delete(obj, name)
			continue
		}
		if fd.Message() != nil && !fd.IsMap() && hasUpstreamName(fd.Message()) {
			if fd.IsList() {
				items, _ := value.([]any)
				list := m.Get(fd).List()
				for j := 0; j < len(items) && j < list.Len(); j++ {
					rename(list.Get(j).Message(), items[j])
				}
			} else {
				rename(m.Get(fd).Message(), value)
			}
		}
		if hasUpstreamSpelling(fd) {
			delete(obj, name)
			obj[fd.JSONName()] = value
		}
	}
}
