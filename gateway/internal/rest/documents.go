package rest

import (
	"encoding/json"
	"fmt"
	"net/url"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "batchgrpc.invalid/gateway/gen/batchgrpc/events/v1"
)

// The JSON:API documents of Klaviyo's read routes, as upstream's
// (GetEventResponseCollectionCompoundDocument and its kin in klaviyo-api):
// `data` (a resource or a list of them), each {type, id, attributes,
// relationships, links.self}, and the top-level links (self; next and prev
// on a list). Attributes are upstream's, by upstream's names; what
// batchgrpc knows beyond them (an event's source job, a profile's tracking
// ids) is in each resource's `meta`, which JSON:API leaves to the server.

type document struct {
	Data  any            `json:"data"`
	Links map[string]any `json:"links"`
}

type resource struct {
	Type          string                  `json:"type"`
	ID            string                  `json:"id"`
	Attributes    map[string]any          `json:"attributes"`
	Relationships map[string]relationship `json:"relationships,omitempty"`
	Links         map[string]string       `json:"links"`
	Meta          map[string]any          `json:"meta,omitempty"`
}

type relationship struct {
	Data resourceID `json:"data"`
}

type resourceID struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// document is the answer to the read route of v for msg, the gRPC
// response (or the record a response_body route unwraps to).
func (v *readView) document(msg proto.Message) (any, error) {
	switch m := msg.(type) {
	case *eventsv1.ListEventsResponse:
		data := make([]resource, 0, len(m.GetEvents()))
		for _, e := range m.GetEvents() {
			data = append(data, v.event(e))
		}
		return v.list(data, m.GetNextPageToken()), nil
	case *eventsv1.Event:
		return document{Data: v.event(m), Links: map[string]any{"self": v.self()}}, nil
	case *eventsv1.ListProfilesResponse:
		data := make([]resource, 0, len(m.GetProfiles()))
		for _, p := range m.GetProfiles() {
			r, err := v.profile(p)
			if err != nil {
				return nil, err
			}
			data = append(data, r)
		}
		return v.list(data, m.GetNextPageToken()), nil
	case *eventsv1.Profile:
		r, err := v.profile(m)
		if err != nil {
			return nil, err
		}
		return document{Data: r, Links: map[string]any{"self": v.self()}}, nil
	}
	return nil, fmt.Errorf("no JSON:API document for %T", msg)
}

// list is a page's document; next is absent on the last page (JSON:API's
// null), and prev always: the page tokens go one way.
func (v *readView) list(data []resource, token string) document {
	links := map[string]any{"self": v.self(), "next": nil, "prev": nil}
	if token != "" {
		next := url.Values{}
		for k, vs := range v.query {
			next[k] = vs
		}
		next.Set("page[cursor]", token)
		links["next"] = v.origin + v.path + "?" + next.Encode()
	}
	return document{Data: data, Links: links}
}

func (v *readView) self() string {
	if len(v.query) == 0 {
		return v.origin + v.path
	}
	return v.origin + v.path + "?" + v.query.Encode()
}

func (v *readView) link(collection, id string) map[string]string {
	return map[string]string{"self": v.origin + "/api/" + collection + "/" + url.PathEscape(id)}
}

// keep leaves the attributes fields[type] asked for.
func (v *readView) keep(attributes map[string]any) map[string]any {
	if v.fields == nil {
		return attributes
	}
	kept := make(map[string]any, len(v.fields))
	for _, name := range v.fields {
		kept[name] = attributes[name]
	}
	return kept
}

// event is an event resource. Its id is the one GetEvent takes; its metric
// is named by the metric's name (batchgrpc has no metric ids, and the
// metric_id filter takes the name).
func (v *readView) event(e *eventsv1.Event) resource {
	at := e.GetEventTime().AsTime()
	r := resource{
		Type: "event",
		ID:   e.GetId(),
		Attributes: v.keep(map[string]any{
			"timestamp":        at.Unix(),
			"event_properties": e.GetData().AsMap(),
			"datetime":         klaviyoTime(e.GetEventTime()),
			"uuid":             e.GetEventId(),
		}),
		Relationships: map[string]relationship{
			"metric": {Data: resourceID{Type: "metric", ID: e.GetEventName()}},
		},
		Links: v.link("events", e.GetId()),
		Meta: map[string]any{
			"event_name":     e.GetEventName(),
			"source":         e.GetSource().String(),
			"identity":       e.GetIdentity(),
			"job_id":         e.GetJobId(),
			"row_number":     e.GetRowNumber(),
			"value":          nil,
			"value_currency": e.GetValueCurrency(),
			"unique_id":      e.GetUniqueId(),
			"backfill":       e.GetBackfill(),
			"metric_service": e.GetMetricService(),
		},
	}
	if e.Value != nil {
		r.Meta["value"] = e.GetValue()
	}
	if e.GetProfileId() != "" {
		r.Relationships["profile"] = relationship{Data: resourceID{Type: "profile", ID: e.GetProfileId()}}
	}
	return r
}

// profile is a profile resource: every upstream attribute, null when the
// profile has none (last_event_date is not kept).
func (v *readView) profile(p *eventsv1.Profile) (resource, error) {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(p.GetAttributes())
	if err != nil {
		return resource{}, err
	}
	var stored map[string]any
	if err := json.Unmarshal(raw, &stored); err != nil {
		return resource{}, err
	}
	attributes := make(map[string]any, len(attributeNames["profile"]))
	for _, name := range attributeNames["profile"] {
		attributes[name] = stored[name]
	}
	attributes["created"] = klaviyoTime(p.GetCreatedTime())
	attributes["updated"] = klaviyoTime(p.GetUpdatedTime())
	customerIDs := p.GetCustomerIds()
	if customerIDs == nil {
		customerIDs = map[string]string{} // an object, empty or not, as the document says
	}
	meta := map[string]any{"customer_ids": customerIDs, "anonymous_id": stored["anonymous_id"], "_kx": stored["kx"]}
	return resource{
		Type:       "profile",
		ID:         p.GetId(),
		Attributes: v.keep(attributes),
		Links:      v.link("profiles", p.GetId()),
		Meta:       meta,
	}, nil
}

// klaviyoTime is a time as Klaviyo writes one (2022-11-08T01:23:45+00:00),
// with the fraction of a second where there is one; null when unset.
func klaviyoTime(t *timestamppb.Timestamp) any {
	if t == nil {
		return nil
	}
	return t.AsTime().UTC().Format("2006-01-02T15:04:05.999999-07:00")
}
