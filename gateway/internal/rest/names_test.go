package rest

import (
	"context"
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

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
	resp := &trackv2.BatchResponse{Success: true}
	out, err := upstreamNames(options)(context.Background(), resp)
	if err != nil {
		t.Fatal(err)
	}
	if out != proto.Message(resp) {
		t.Errorf("a response without json_name exceptions was rewritten: %#v", out)
	}
}
