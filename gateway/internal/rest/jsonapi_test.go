package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "batchgrpc.invalid/gateway/gen/batchgrpc/events/v1"
)

func TestReadKindOfTheFourReadRoutesOnly(t *testing.T) {
	for target, want := range map[string]readKind{
		"/api/events": eventList, "/api/events/12": eventOne, "/api/profiles": profileList,
		"/api/profiles/p1": profileOne, "/api/events/": 0, "/api/events/1/profile": 0, "/api/eventsx": 0,
		"/api/event-bulk-create-jobs/x": 0,
	} {
		got, ok := readKindOf(httptest.NewRequest("GET", target, nil))
		if got != want || ok != (want != 0) {
			t.Errorf("%s: got %v %v, want %v", target, got, ok, want)
		}
	}
	if _, ok := readKindOf(httptest.NewRequest("DELETE", "/api/profiles", nil)); ok {
		t.Error("DELETE is not a read")
	}
}

func TestParseFilterReadsKlaviyosTerms(t *testing.T) {
	terms, err := parseFilter(`equals(metric_id,"A \"b\", c)"),greater-than(datetime,2026-01-01T00:00:00Z),any(email,["a","b"])`)
	if err != nil {
		t.Fatal(err)
	}
	want := []filterTerm{
		{op: "equals", field: "metric_id", value: `A "b", c)`, quoted: true},
		{op: "greater-than", field: "datetime", value: "2026-01-01T00:00:00Z"},
		{op: "any", field: "email", value: `["a","b"]`},
	}
	if !reflect.DeepEqual(terms, want) {
		t.Errorf("got %#v", terms)
	}
	for _, bad := range []string{
		"", "equals", `equals(email,"a"`, `equals(email,"a")x`, `equals(email,"a"),`, `and(equals(email,"a"))`,
		`equals(email)`, `equals(,"a")`, strings.Repeat(`equals(id,"a"),`, 8) + `equals(id,"a")`,
	} {
		if _, err := parseFilter(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func refusedParameter(t *testing.T, err error) string {
	t.Helper()
	var ce *clientError
	if !errors.As(err, &ce) {
		t.Fatalf("not a client error: %v", err)
	}
	return ce.field
}

func TestReadQueryMapsWhatTheStoreAnswers(t *testing.T) {
	values, _ := url.ParseQuery(`filter=equals(metric_id,"Placed Order"),equals(profile_id,"p1")&page[size]=5&page[cursor]==tok`)
	got, fields, err := readQuery(eventList, values)
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"metric": {"Placed Order"}, "profile_id": {"p1"}, "page_size": {"5"}, "page_token": {"tok"}}
	if !reflect.DeepEqual(got, want) || fields != nil {
		t.Errorf("got %v %v", got, fields)
	}
	values, _ = url.ParseQuery(`filter=equals(id,"p1")&sort=created&fields[profile]=email,email,created`)
	got, fields, err = readQuery(profileList, values)
	if err != nil {
		t.Fatal(err)
	}
	want = url.Values{"id": {"p1"}, "page_size": {"20"}}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(fields, []string{"email", "created"}) {
		t.Errorf("got %v %v", got, fields)
	}
	if got, _, _ := readQuery(eventOne, url.Values{}); len(got) != 0 {
		t.Errorf("a single read sends no page size: %v", got)
	}
}

func TestReadQueryRefusesWhatItCannotHonourNamingTheParameter(t *testing.T) {
	for query, want := range map[string]string{
		`filter=greater-than(datetime,2026-01-01T00:00:00Z)`:          "filter",
		`filter=equals(email,"a")`:                                    "filter", // not an events field
		`filter=equals(metric_id,"a"),equals(metric_id,"b")`:          "filter",
		`filter=equals(metric_id,"")`:                                 "filter",
		`filter=equals(metric_id,"` + strings.Repeat("m", 129) + `")`: "filter",
		`sort=-datetime`:         "sort",
		`include=metric`:         "include",
		`fields[metric]=name`:    "fields[metric]",
		`fields[event]=name`:     "fields[event]",
		`additional-fields[x]=y`: "additional-fields[x]",
		`page[size]=1001`:        "page[size]",
		`page[size]=1.5`:         "page[size]",
		`page_size=5`:            "page_size",
		`profile_id=p1`:          "profile_id",
		`sort=a&sort=b`:          "sort",
		`page[cursor]=` + strings.Repeat("c", maxQueryValue+1): "page[cursor]",
	} {
		values, _ := url.ParseQuery(query)
		if _, _, err := readQuery(eventList, values); refusedParameter(t, err) != want {
			t.Errorf("%.60s: refused naming %q, want %q", query, refusedParameter(t, err), want)
		}
	}
	values, _ := url.ParseQuery(`additional-fields[profile]=subscriptions`)
	if _, _, err := readQuery(profileOne, values); refusedParameter(t, err) != "additional-fields[profile]" {
		t.Error(err)
	}
	values, _ = url.ParseQuery(`filter=equals(id,"p1")`)
	if _, _, err := readQuery(profileOne, values); refusedParameter(t, err) != "filter" {
		t.Error("a single read takes no filter")
	}
}

func TestPageCursorTakesTheTokenOutOfWhatTheSDKSends(t *testing.T) {
	for sent, want := range map[string]string{
		"tok": "tok", "=tok": "tok",
		"http://127.0.0.1:1/api/events?page%5Bcursor%5D=tok&page%5Bsize%5D=1": "tok",
	} {
		if got := pageCursor(sent); got != want {
			t.Errorf("%s: %q", sent, got)
		}
	}
}

func documentFor(t *testing.T, target string, msg proto.Message) map[string]any {
	t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	kind, _ := readKindOf(r)
	values := r.URL.Query()
	_, fields, err := readQuery(kind, values)
	if err != nil {
		t.Fatal(err)
	}
	view := &readView{kind: kind, origin: origin(r), path: r.URL.Path, query: values, fields: fields}
	out, err := upstreamNames(options)(context.WithValue(context.Background(), readViewKey{}, view), msg)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(out)
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAnEventListIsAJSONAPIDocument(t *testing.T) {
	data, _ := structpb.NewStruct(map[string]any{"sku": "X"})
	resp := &eventsv1.ListEventsResponse{
		Events: []*eventsv1.Event{{
			Id: "7", EventId: "e7", EventName: "Placed Order", ProfileId: "p1", Data: data,
			EventTime: &timestamppb.Timestamp{Seconds: 1777636800, Nanos: 500_000_000}, Value: proto.Float64(9.99),
			Source: eventsv1.Event_BULK_CREATE,
		}},
		NextPageToken: "next",
	}
	got := documentFor(t, "/api/events?page%5Bsize%5D=1", resp)
	want := map[string]any{
		"data": []any{map[string]any{
			"type": "event", "id": "7",
			"attributes": map[string]any{
				"timestamp": 1777636800.0, "datetime": "2026-05-01T12:00:00.5+00:00",
				"event_properties": map[string]any{"sku": "X"}, "uuid": "e7",
			},
			"relationships": map[string]any{
				"metric":  map[string]any{"data": map[string]any{"type": "metric", "id": "Placed Order"}},
				"profile": map[string]any{"data": map[string]any{"type": "profile", "id": "p1"}},
			},
			"links": map[string]any{"self": "http://example.com/api/events/7"},
			"meta": map[string]any{
				"event_name": "Placed Order", "source": "BULK_CREATE", "identity": "", "job_id": "", "row_number": 0.0,
				"value": 9.99, "value_currency": "", "unique_id": "", "backfill": false, "metric_service": "",
			},
		}},
		"links": map[string]any{
			"self": "http://example.com/api/events?page%5Bsize%5D=1",
			"next": "http://example.com/api/events?page%5Bcursor%5D=next&page%5Bsize%5D=1",
			"prev": nil,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
}

func TestAProfileIsAJSONAPIDocumentWithUpstreamsAttributes(t *testing.T) {
	profile := &eventsv1.Profile{
		Id:          "p1",
		Attributes:  &eventsv1.ProfileAttributes{Email: proto.String("a@example.com"), Kx: "kx-1"},
		CustomerIds: map[string]string{"registered": "a"},
		CreatedTime: &timestamppb.Timestamp{Seconds: 1777636800},
	}
	got := documentFor(t, "/api/profiles/p1", profile)
	data := got["data"].(map[string]any)
	attributes := data["attributes"].(map[string]any)
	if len(attributes) != len(attributeNames["profile"]) {
		t.Errorf("attributes %v", attributes)
	}
	if attributes["email"] != "a@example.com" || attributes["phone_number"] != nil || attributes["created"] != "2026-05-01T12:00:00+00:00" {
		t.Errorf("attributes %v", attributes)
	}
	meta := data["meta"].(map[string]any)
	if meta["_kx"] != "kx-1" || !reflect.DeepEqual(meta["customer_ids"], map[string]any{"registered": "a"}) {
		t.Errorf("meta %v", meta)
	}
	if !reflect.DeepEqual(got["links"], map[string]any{"self": "http://example.com/api/profiles/p1"}) {
		t.Errorf("links %v", got["links"])
	}
	sparse := documentFor(t, "/api/profiles?fields%5Bprofile%5D=email", &eventsv1.ListProfilesResponse{Profiles: []*eventsv1.Profile{profile}})
	first := sparse["data"].([]any)[0].(map[string]any)
	if !reflect.DeepEqual(first["attributes"], map[string]any{"email": "a@example.com"}) {
		t.Errorf("sparse %v", first["attributes"])
	}
	if links := sparse["links"].(map[string]any); links["next"] != nil {
		t.Errorf("last page: %v", links)
	}
}
