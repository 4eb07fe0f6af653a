package rest

import (
	"context"
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	batchesv6 "batchgrpc.invalid/gateway/gen/batchgrpc/batches/v6"
	eventsv1 "batchgrpc.invalid/gateway/gen/batchgrpc/events/v1"
	trackv2 "batchgrpc.invalid/gateway/gen/batchgrpc/track/v2"
)

var options = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

func TestLowerCamelIsProtocsDefault(t *testing.T) {
	for name, want := range map[string]string{"kx": "kx", "phone_number": "phoneNumber", "a_b_c": "aBC"} {
		if got := lowerCamel(name); got != want {
			t.Errorf("lowerCamel(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestProfilesGetUpstreamsKxAndKeepSnakeCase(t *testing.T) {
	resp := &eventsv1.ListProfilesResponse{Profiles: []*eventsv1.Profile{{
		Id:         "p1",
		Attributes: &eventsv1.ProfileAttributes{Kx: "kx-1", PhoneNumber: proto.String("+15005550006")},
	}}}
	out, err := upstreamNames(options)(context.Background(), resp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(out)
	var got struct {
		Profiles []struct {
			Attributes map[string]any `json:"attributes"`
		} `json:"profiles"`
		NextPageToken *string `json:"next_page_token"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	attributes := got.Profiles[0].Attributes
	if attributes["_kx"] != "kx-1" || attributes["phone_number"] != "+15005550006" || got.NextPageToken == nil {
		t.Errorf("renamed JSON = %s", raw)
	}
	if _, stale := attributes["kx"]; stale {
		t.Errorf("kx kept next to _kx: %s", raw)
	}
}

func TestResponsesWithoutUpstreamSpellingsPassUntouched(t *testing.T) {
	resp := &trackv2.GetSystemTimeResponse{Success: true}
	out, err := upstreamNames(options)(context.Background(), resp)
	if err != nil {
		t.Fatal(err)
	}
	if out != proto.Message(resp) {
		t.Errorf("a response without json_name exceptions was rewritten: %#v", out)
	}
}

func TestEmptyFieldsUpstreamLeavesOutAreLeftOut(t *testing.T) {
	resp := &trackv2.BatchResponse{Success: true, Results: []*trackv2.CommandResult{
		{Success: true, CommandId: proto.String("abc")},
		{Success: false, Errors: []string{"Field 'event_type' is required."}},
		{Success: true, Time: proto.Float64(1.5)},
	}}
	out, err := upstreamNames(options)(context.Background(), resp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(out)
	want := `{"end_time":0,"results":[{"command_id":"abc","success":true},` +
		`{"errors":["Field 'event_type' is required."],"success":false},{"success":true,"time":1.5}],` +
		`"start_time":0,"success":true}`
	if string(raw) != want {
		t.Errorf("batch results = %s, want %s", raw, want)
	}

	job := &batchesv6.BatchJob{Id: "job_1", Status: batchesv6.BatchJob_PENDING}
	out, err = upstreamNames(options)(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	raw, _ = json.Marshal(out)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"event_name", "started_time", "completed_time", "error_code", "error_message", "debug_message"} {
		if _, there := got[absent]; there {
			t.Errorf("a PENDING job's %s is in its JSON: %s", absent, raw)
		}
	}
	for _, present := range []string{"default_event_name", "success_rows", "failed_rows", "tags", "created_time"} {
		if _, there := got[present]; !there {
			t.Errorf("a PENDING job's %s is not in its JSON: %s", present, raw)
		}
	}
}
