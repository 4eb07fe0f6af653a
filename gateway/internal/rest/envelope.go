package rest

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// Over REST an error answers in the body its upstream API returns, so that
// upstream's clients read it unchanged (API.md, "REST error bodies"): the
// rich google.rpc.Status stays with gRPC callers, and everything a REST
// client needs from it (upstream's code, the fields at fault, the
// parameters) is carried over into upstream's members.

// extoleError is Extole's RestExceptionResponse (upstream-apis.md A.5):
// every member is required.
type extoleError struct {
	UniqueID       string            `json:"unique_id"`
	HTTPStatusCode int               `json:"http_status_code"`
	Code           string            `json:"code"`
	Message        string            `json:"message"`
	Parameters     map[string]string `json:"parameters"`
}

// klaviyoErrors is a JSON:API error document (B.4). Klaviyo's SDK models
// break on a null id, code, title or detail, so none is ever empty.
type klaviyoErrors struct {
	Errors []klaviyoError `json:"errors"`
}

type klaviyoError struct {
	ID     string            `json:"id"`
	Status int               `json:"status"`
	Code   string            `json:"code"`
	Title  string            `json:"title"`
	Detail string            `json:"detail"`
	Source map[string]string `json:"source"`
	Meta   map[string]any    `json:"meta"`
}

// bloomreachError is the tracking API's refusal (C.3): the batch route says
// why in "message", the single-command routes list "errors".
type bloomreachError struct {
	Success bool     `json:"success"`
	Errors  []string `json:"errors,omitempty"`
	Message string   `json:"message,omitempty"`
}

// failure is what an error envelope is made of, read from a status.
type failure struct {
	httpStatus int
	code       string            // upstream's code, ErrorInfo metadata["code"]
	reason     string            // the ErrorInfo reason
	message    string            // the status message
	parameters map[string]string // the rest of the ErrorInfo metadata
	violations []*errdetails.BadRequest_FieldViolation
}

func failureOf(s *status.Status, httpStatus int) failure {
	f := failure{httpStatus: httpStatus, message: s.Message(), parameters: map[string]string{}}
	for _, d := range s.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			f.reason = d.GetReason()
			for k, v := range d.GetMetadata() {
				if k == "code" {
					f.code = v
				} else {
					f.parameters[k] = v
				}
			}
		case *errdetails.BadRequest:
			f.violations = append(f.violations, d.GetFieldViolations()...)
		}
	}
	if f.code == "" {
		// Not one of ours (every error of the server's and the sidecar's
		// has an ErrorInfo): a code any client can branch on.
		f.code = "internal"
	}
	if f.message == "" {
		f.message = http.StatusText(httpStatus)
	}
	return f
}

// errorBody is the body of an error on a route of api; batch tells
// Bloomreach's batch route from its single-command ones.
func errorBody(a api, batch bool, f failure) any {
	switch a {
	case apiBatches:
		return extoleBody(f)
	case apiTracking:
		return bloomreachBody(batch, f)
	}
	return klaviyoBody(f)
}

func extoleBody(f failure) extoleError {
	parameters := f.parameters
	if len(f.violations) > 0 {
		// Extole names one field per error, with the sub-error's reason and
		// description in the parameters (A.5): the first violation is it,
		// the count says whether there were more.
		first := f.violations[0]
		parameters["field"] = first.GetField()
		parameters["description"] = first.GetDescription()
		parameters["reason"] = cmp.Or(first.GetReason(), f.reason)
		if _, counted := parameters["field_violations"]; !counted && len(f.violations) > 1 {
			parameters["field_violations"] = fmt.Sprint(len(f.violations))
		}
	}
	return extoleError{
		UniqueID:       newID(),
		HTTPStatusCode: f.httpStatus,
		Code:           f.code,
		Message:        f.message,
		Parameters:     parameters,
	}
}

func klaviyoBody(f failure) klaviyoErrors {
	title := klaviyoTitle(f.code, f.httpStatus)
	entry := func(source map[string]string, detail string) klaviyoError {
		if detail == "" {
			detail = f.message
		}
		return klaviyoError{
			ID: newID(), Status: f.httpStatus, Code: f.code, Title: title, Detail: detail,
			Source: source, Meta: map[string]any{},
		}
	}
	if len(f.violations) == 0 {
		// Klaviyo points a request-wide error at the document's data.
		return klaviyoErrors{Errors: []klaviyoError{entry(map[string]string{"pointer": "/data"}, f.message)}}
	}
	out := klaviyoErrors{Errors: make([]klaviyoError, 0, len(f.violations))}
	for _, v := range f.violations {
		out.Errors = append(out.Errors, entry(klaviyoSource(v.GetField()), f.about(v)))
	}
	return out
}

// about is the sentence for one violation: the message when it is the only
// one (a violation's description often says only what is wrong with the
// field, "required header"), else its description.
func (f failure) about(v *errdetails.BadRequest_FieldViolation) string {
	if len(f.violations) == 1 {
		return f.message
	}
	return cmp.Or(v.GetDescription(), f.message)
}

// klaviyoSource is a JSON:API error source: a body field is a pointer into
// the document; anything else (a header such as revision, a query
// parameter) is a parameter.
func klaviyoSource(field string) map[string]string {
	switch {
	case strings.HasPrefix(field, "/"):
		return map[string]string{"pointer": field}
	case field == "" || field == "body":
		return map[string]string{"pointer": "/data"}
	}
	return map[string]string{"parameter": field}
}

// Klaviyo's titles are its framework's default details, one per code.
var klaviyoTitles = map[string]string{
	"invalid":                "Invalid input.",
	"parse_error":            "Malformed request.",
	"not_authenticated":      "Authentication credentials were not provided.",
	"authentication_failed":  "Incorrect authentication credentials.",
	"permission_denied":      "You do not have permission to perform this action.",
	"not_found":              "Not found.",
	"method_not_allowed":     "Method not allowed.",
	"unsupported_media_type": "Unsupported media type.",
	"throttled":              "Request was throttled.",
	"internal":               "A server error occurred.",
}

func klaviyoTitle(code string, httpStatus int) string {
	if title, ok := klaviyoTitles[code]; ok {
		return title
	}
	if text := http.StatusText(httpStatus); text != "" {
		return text + "."
	}
	return "Error."
}

func bloomreachBody(batch bool, f failure) bloomreachError {
	if batch {
		return bloomreachError{Message: f.message}
	}
	if len(f.violations) == 0 {
		return bloomreachError{Errors: []string{f.message}}
	}
	errs := make([]string, 0, len(f.violations))
	for _, v := range f.violations {
		errs = append(errs, f.about(v))
	}
	return bloomreachError{Errors: errs}
}

// isTrackingBatch tells Bloomreach's batch route from its single commands.
func isTrackingBatch(r *http.Request) bool {
	return apiOf(r) == apiTracking && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/batch")
}

// newID is a random (version 4) UUID: a unique id for one error answer, as
// Klaviyo's ids are and as Extole's unique_id is meant (to be logged).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
