package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// jsonBody is grpc-gateway's JSONPb with a decoder that says which field of
// the body is wrong: a malformed body, a wrong type or an unknown field is
// a clientError naming the field as the route's upstream API would (a
// JSON:API pointer for the Klaviyo routes, a dotted path for the others),
// kept in the request's bodyState for the error handler.
type jsonBody struct {
	*runtime.JSONPb
}

func (j *jsonBody) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return j.JSONPb.NewDecoder(r).Decode(v)
		}
		body, _ := r.(*guardedBody)
		raw, err := readBody(r, body)
		if err != nil {
			if body != nil && body.state.failure() == nil {
				body.state.decode = invalidField("body", "The request body could not be read: "+err.Error())
			}
			return err
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			// No body is an empty request, as grpc-gateway has it.
			return io.EOF
		}
		if err := j.UnmarshalOptions.Unmarshal(raw, msg); err != nil {
			refused := decodeError(raw, err, body != nil && body.pointers)
			if body != nil {
				body.state.decode = refused
			}
			return refused
		}
		return nil
	})
}

func readBody(r io.Reader, body *guardedBody) ([]byte, error) {
	var buf bytes.Buffer
	if body != nil && body.length > 0 && (body.left < 0 || body.length <= body.left) {
		buf.Grow(int(body.length))
	}
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// protojson's errors give the place as "(line L:C)", C counted in runes.
var position = regexp.MustCompile(`\(line (\d+):(\d+)\): `)

// decodeError turns protojson's error into a clientError with the path of
// the field at the error's position.
func decodeError(raw []byte, err error, pointers bool) *clientError {
	// protobuf-go spells its prefix "proto: " or "proto:\u00a0", chosen by
	// the binary's own hash so that nobody relies on its errors' text: both go.
	text := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "proto:"), " ")
	text = strings.TrimPrefix(text, "\u00a0")
	field := "body"
	if m := position.FindStringSubmatchIndex(text); m != nil {
		line, _ := strconv.Atoi(text[m[2]:m[3]])
		column, _ := strconv.Atoi(text[m[4]:m[5]])
		if path := pathAt(raw, offsetOf(raw, line, column)); len(path) > 0 {
			field = formatPath(path, pointers)
		}
		// The field's path says where; the line and column stay only for
		// a body that is not JSON.
		if !strings.HasPrefix(text, "syntax error") {
			text = text[:m[0]] + text[m[1]:]
		}
	}
	// Clipped with the rest of the message (richStatus): a long field name
	// or value is not echoed whole.
	return invalidField(field, fmt.Sprintf("Invalid JSON body at %s: %s", field, text))
}

// offsetOf is the byte offset of line:column (1-based, column in runes).
func offsetOf(raw []byte, line, column int) int {
	i := 0
	for l := 1; l < line; l++ {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return len(raw)
		}
		i += j + 1
	}
	for c := 1; c < column && i < len(raw); c++ {
		_, size := utf8.DecodeRune(raw[i:])
		i += size
	}
	return i
}

// segment is one step of a path into a JSON document: a key or an index.
type segment struct {
	key   string
	index int
	isKey bool
}

// pathAt is the path of the key or value that starts at byte pos: the
// object keys and array indexes that lead to it. A position at the end of
// the document (a body cut short) or before any key has no path.
func pathAt(raw []byte, pos int) []segment {
	if pos >= len(bytes.TrimRight(raw, " \t\r\n")) {
		return nil
	}
	type frame struct {
		array, expectKey, hasKey bool
		key                      string
		index                    int
	}
	var stack []*frame
	path := func() []segment {
		var out []segment
		for _, f := range stack {
			switch {
			case f.array:
				out = append(out, segment{index: f.index})
			case f.hasKey:
				out = append(out, segment{key: f.key, isKey: true})
			}
		}
		return out
	}
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.array {
			top.index++
		} else {
			top.expectKey, top.hasKey = true, false
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		start := skipSeparators(raw, int(dec.InputOffset()))
		tok, err := dec.Token()
		if err != nil {
			return path()
		}
		isKey := false
		if len(stack) > 0 {
			if top := stack[len(stack)-1]; !top.array && top.expectKey {
				if key, ok := tok.(string); ok {
					top.key, top.hasKey, top.expectKey, isKey = key, true, false, true
				}
			}
		}
		if start >= pos {
			return path()
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{array: true})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			if !isKey {
				valueDone()
			}
		}
	}
}

func skipSeparators(raw []byte, i int) int {
	for i < len(raw) {
		switch raw[i] {
		case ' ', '\t', '\r', '\n', ',', ':':
			i++
		default:
			return i
		}
	}
	return i
}

// formatPath writes a path as a JSON pointer (RFC 6901, as Klaviyo names
// fields) or dotted with indexes (commands[1].data).
func formatPath(path []segment, pointer bool) string {
	var b strings.Builder
	for i, s := range path {
		switch {
		case pointer && s.isKey:
			b.WriteString("/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(s.key))
		case pointer:
			b.WriteString("/" + strconv.Itoa(s.index))
		case s.isKey:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		default:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
	}
	return b.String()
}
