package rest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Klaviyo's read routes speak JSON:API (upstream-apis.md B; the SDK's
// models need it): the query is JSON:API's (filter, sort, page[...],
// fields[...], include) and the answer a compound document. Both are a
// REST concern, so they live here and gRPC callers keep their messages:
// readQuery turns the JSON:API query into the gRPC request's fields (as
// grpc-gateway's query parameters), and documents.go turns the gRPC answer
// into the document. What the store cannot answer (a datetime filter, a
// sort other than its own order, related resources) is upstream's 400
// naming the parameter, never silently ignored.

// readKind is one of Klaviyo's read routes.
type readKind int

const (
	eventList readKind = iota + 1
	eventOne
	profileList
	profileOne
)

// resourceType is the JSON:API type a route answers with.
func (k readKind) resourceType() string {
	if k == eventList || k == eventOne {
		return "event"
	}
	return "profile"
}

func (k readKind) isList() bool { return k == eventList || k == profileList }

// readKindOf is the read route a request is for, if any.
func readKindOf(r *http.Request) (readKind, bool) {
	if r.Method != http.MethodGet {
		return 0, false
	}
	for prefix, kinds := range map[string][2]readKind{
		"/api/events":   {eventList, eventOne},
		"/api/profiles": {profileList, profileOne},
	} {
		rest, found := strings.CutPrefix(r.URL.Path, prefix)
		switch {
		case !found:
		case rest == "":
			return kinds[0], true
		case strings.HasPrefix(rest, "/") && len(rest) > 1 && !strings.Contains(rest[1:], "/"):
			return kinds[1], true
		}
	}
	return 0, false
}

// Limits on the query (API.md, "Limits on everything a client sends").
const (
	maxQueryParameters = 16
	maxQueryValue      = 2000 // an email of 1,000 characters fits in a filter
	maxFilterTerms     = 8
)

// Page sizes as upstream's (klaviyo-api 25.0.0's get_events, get_profiles).
var pageSizes = map[readKind]struct{ byDefault, most int }{
	eventList:   {200, 1000},
	profileList: {20, 100},
}

// The attributes each type's document has, in upstream's order; a
// fields[type] may name only these.
var attributeNames = map[string][]string{
	"event": {"timestamp", "event_properties", "datetime", "uuid"},
	"profile": {
		"email", "phone_number", "external_id", "first_name", "last_name", "organization", "locale", "title",
		"image", "created", "updated", "last_event_date", "location", "properties",
	},
}

// filterFields maps each filter field the store answers (with equals) to
// the gRPC request field it sets, and its most characters. job_id is ours:
// the contract's ListEvents filter by source job, which upstream lacks.
var filterFields = map[readKind]map[string]struct {
	field string
	most  int
}{
	eventList: {
		"metric_id":  {"metric", 128},
		"profile_id": {"profile_id", 64},
		"job_id":     {"job_id", 64},
	},
	profileList: {
		"id":           {"id", 64},
		"email":        {"email", 1000},
		"phone_number": {"phone_number", 1000},
		"external_id":  {"external_id", 1000},
	},
}

// The sort values each list honours: profiles come in the order they were
// created; events in the order they were stored, which is neither their
// datetime nor their timestamp (a bulk event may be backdated).
var sortValues = map[readKind][]string{
	profileList: {"created"},
}

// readView is what the document needs of the request.
type readView struct {
	kind readKind
	// scheme://host of the request, for the links.
	origin string
	path   string
	// The JSON:API parameters as sent, for links.self, and without
	// page[cursor], for links.next.
	query url.Values
	// fields[type] for the route's own type; nil: every attribute.
	fields []string
}

type readViewKey struct{}

func readViewOf(ctx context.Context) *readView {
	v, _ := ctx.Value(readViewKey{}).(*readView)
	return v
}

// jsonAPIReads wraps the handler of the read routes: the JSON:API query
// becomes the gRPC request's query parameters, and the view rides in the
// context to the response rewriter (upstreamNames).
func jsonAPIReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, ok := readKindOf(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		values, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			errorResponse(r.Context(), nil, nil, w, r, invalidField("query", "The query string does not parse: "+err.Error()))
			return
		}
		grpcQuery, fields, err := readQuery(kind, values)
		if err != nil {
			errorResponse(r.Context(), nil, nil, w, r, err)
			return
		}
		view := &readView{kind: kind, origin: origin(r), path: r.URL.Path, query: values, fields: fields}
		r = r.WithContext(context.WithValue(r.Context(), readViewKey{}, view))
		r.URL.RawQuery = grpcQuery.Encode()
		next.ServeHTTP(w, r)
	})
}

// origin is the scheme and host the client called, for absolute links as
// upstream's (a proxy in front says which scheme in X-Forwarded-Proto).
func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if proto := r.Header.Get("X-Forwarded-Proto"); proto == "https" || proto == "http" {
		scheme = proto
	}
	return scheme + "://" + r.Host
}

// readQuery checks a read route's JSON:API query and returns the gRPC
// request's fields, and the fields[type] the document keeps.
func readQuery(kind readKind, values url.Values) (url.Values, []string, error) {
	if len(values) > maxQueryParameters {
		return nil, nil, invalidField("query", fmt.Sprintf("At most %d query parameters are accepted.", maxQueryParameters))
	}
	grpcQuery := url.Values{}
	if sizes, ok := pageSizes[kind]; ok {
		grpcQuery.Set("page_size", strconv.Itoa(sizes.byDefault))
	}
	var fields []string
	for _, name := range sortedKeys(values) {
		sent := values[name]
		if len(sent) > 1 {
			return nil, nil, invalidField(name, fmt.Sprintf("The query parameter %s is given %d times; send it once.", clip(name), len(sent)))
		}
		value := sent[0]
		if utf8.RuneCountInString(value) > maxQueryValue {
			return nil, nil, invalidField(name, fmt.Sprintf("The query parameter %s has more than %d characters.", clip(name), maxQueryValue))
		}
		var err error
		switch {
		case name == "filter" && kind.isList():
			err = filterQuery(kind, value, grpcQuery)
		case name == "sort" && kind.isList():
			if !slices.Contains(sortValues[kind], value) {
				err = invalidField(name, fmt.Sprintf("Sorting by %q is not supported here: %s.", clip(value), honoured(sortValues[kind])))
			}
		case name == "page[size]" && kind.isList():
			err = pageSizeQuery(kind, value, grpcQuery)
		case name == "page[cursor]" && kind.isList():
			grpcQuery.Set("page_token", pageCursor(value))
		case name == "include":
			err = invalidField(name, "Related resources are not included here: drop include and read them by id.")
		case name == "fields["+kind.resourceType()+"]":
			fields, err = fieldsQuery(name, value, attributeNames[kind.resourceType()])
		case strings.HasPrefix(name, "fields[") && strings.HasSuffix(name, "]"):
			err = invalidField(name, fmt.Sprintf("%s is for an included resource, and none is included here.", clip(name)))
		case strings.HasPrefix(name, "additional-fields[") && strings.HasSuffix(name, "]"):
			err = invalidField(name, fmt.Sprintf("%s: no additional field (subscriptions, predictive analytics) is kept here.", clip(name)))
		default:
			err = invalidField(name, fmt.Sprintf("%s is not a query parameter of this route.", clip(name)))
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return grpcQuery, fields, nil
}

func sortedKeys(values url.Values) []string {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func honoured(values []string) string {
	if len(values) == 0 {
		return "this route answers in its own order (oldest first) and takes no sort"
	}
	return "sort takes " + strings.Join(values, ", ")
}

func pageSizeQuery(kind readKind, value string, grpcQuery url.Values) error {
	most := pageSizes[kind].most
	size, err := strconv.Atoi(value)
	if err != nil || size < 1 || size > most {
		return invalidField("page[size]", fmt.Sprintf("page[size] must be an integer from 1 to %d, got %q.", most, clip(value)))
	}
	grpcQuery.Set("page_size", strconv.Itoa(size))
	return nil
}

// pageCursor is the page token in a page[cursor]. Klaviyo's SDK, given a
// links.next URL as its page_cursor, sends either the whole URL (http) or
// what follows "page[cursor]" with its "=" (https): both name the token.
func pageCursor(value string) string {
	if strings.Contains(value, "://") {
		if u, err := url.Parse(value); err == nil {
			value = u.Query().Get("page[cursor]")
		}
	}
	return strings.TrimPrefix(value, "=")
}

func fieldsQuery(name, value string, known []string) ([]string, error) {
	var fields []string
	for _, field := range strings.Split(value, ",") {
		if !slices.Contains(known, field) {
			return nil, invalidField(name, fmt.Sprintf("%q is not an attribute of this resource: %s takes %s.",
				clip(field), clip(name), strings.Join(known, ", ")))
		}
		if !slices.Contains(fields, field) {
			fields = append(fields, field)
		}
	}
	return fields, nil
}

// filterQuery sets the gRPC fields of a filter: terms joined by commas
// (an AND), each equals(field,"value") on a field the store answers.
func filterQuery(kind readKind, filter string, grpcQuery url.Values) error {
	terms, err := parseFilter(filter)
	if err != nil {
		return invalidField("filter", "The filter does not parse: "+err.Error())
	}
	known := filterFields[kind]
	for _, t := range terms {
		target, ok := known[t.field]
		if !ok || t.op != "equals" {
			return invalidField("filter", fmt.Sprintf("%s(%s,...) is not a filter this route supports: it takes %s.",
				clip(t.op), clip(t.field), supportedFilters(known)))
		}
		if !t.quoted {
			return invalidField("filter", fmt.Sprintf("The value of %s in the filter must be a quoted string.", t.field))
		}
		if t.value == "" || utf8.RuneCountInString(t.value) > target.most {
			return invalidField("filter", fmt.Sprintf("The value of %s in the filter must have 1 to %d characters.", t.field, target.most))
		}
		if grpcQuery.Has(target.field) {
			return invalidField("filter", fmt.Sprintf("The filter names %s twice.", t.field))
		}
		grpcQuery.Set(target.field, t.value)
	}
	return nil
}

func supportedFilters(known map[string]struct {
	field string
	most  int
}) string {
	names := make([]string, 0, len(known))
	for name := range known {
		names = append(names, name)
	}
	slices.Sort(names)
	return `equals(field,"value") with field one of ` + strings.Join(names, ", ")
}

// filterTerm is one op(field,value) of a JSON:API filter.
type filterTerm struct {
	op, field, value string
	quoted           bool // value was a string literal
}

// parseFilter reads Klaviyo's filter syntax: op(field,value) terms joined
// by commas. A value is a quoted string (with \-escapes), a list in
// brackets or a bare literal (a number, a date, true); nested operators
// (and, or, not) are not terms of this grammar and fail to parse.
func parseFilter(s string) ([]filterTerm, error) {
	var terms []filterTerm
	for i := 0; ; {
		if len(terms) == maxFilterTerms {
			return nil, fmt.Errorf("at most %d terms", maxFilterTerms)
		}
		op, next, err := token(s, i, '(')
		if err != nil {
			return nil, err
		}
		field, next, err := token(s, next, ',')
		if err != nil {
			return nil, err
		}
		t := filterTerm{op: op, field: field}
		if t.value, t.quoted, next, err = literal(s, next); err != nil {
			return nil, err
		}
		if next >= len(s) || s[next] != ')' {
			return nil, fmt.Errorf("expected ) at character %d", next+1)
		}
		terms = append(terms, t)
		i = next + 1
		if i == len(s) {
			return terms, nil
		}
		if s[i] != ',' {
			return nil, fmt.Errorf("expected , between terms at character %d", i+1)
		}
		i++
	}
}

// token reads a name (letters, digits, _ - . $) from i up to end.
func token(s string, i int, end byte) (string, int, error) {
	start := i
	for i < len(s) && (isNameByte(s[i])) {
		i++
	}
	if i == start || i >= len(s) || s[i] != end {
		return "", 0, fmt.Errorf("expected a name and %c at character %d", end, start+1)
	}
	return s[start:i], i + 1, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c == '$' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// literal reads a value from i: a quoted string, a bracketed list (kept as
// written) or a bare literal up to the closing parenthesis.
func literal(s string, i int) (value string, quoted bool, next int, err error) {
	switch {
	case i < len(s) && (s[i] == '"' || s[i] == '\''):
		quote := s[i]
		var b strings.Builder
		for j := i + 1; j < len(s); j++ {
			switch c := s[j]; {
			case c == '\\' && j+1 < len(s):
				j++
				b.WriteByte(s[j])
			case c == quote:
				return b.String(), true, j + 1, nil
			default:
				b.WriteByte(c)
			}
		}
		return "", false, 0, fmt.Errorf("unterminated string at character %d", i+1)
	case i < len(s) && s[i] == '[':
		end := strings.IndexByte(s[i:], ']')
		if end < 0 {
			return "", false, 0, fmt.Errorf("unterminated list at character %d", i+1)
		}
		return s[i : i+end+1], false, i + end + 1, nil
	}
	end := strings.IndexByte(s[i:], ')')
	if end <= 0 {
		return "", false, 0, fmt.Errorf("expected a value at character %d", i+1)
	}
	return s[i : i+end], false, i + end, nil
}
