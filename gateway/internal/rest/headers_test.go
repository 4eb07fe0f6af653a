package rest

import "testing"

func TestTraceContextHeadersReachTheServerUnderTheirOwnNames(t *testing.T) {
	for header, want := range map[string]string{
		"traceparent": "traceparent",
		"Traceparent": "traceparent",
		"TraceState":  "tracestate",
	} {
		got, ok := incomingHeader(header)
		if !ok || got != want {
			t.Errorf("incomingHeader(%q) = %q, %v; want %q, true", header, got, ok, want)
		}
	}
}

func TestOtherHeadersKeepGrpcGatewaysRules(t *testing.T) {
	if got, ok := incomingHeader("Authorization"); ok {
		t.Errorf("Authorization forwarded a second time as %q", got)
	}
	if got, ok := incomingHeader("X-Unrelated"); ok {
		t.Errorf("X-Unrelated forwarded as %q", got)
	}
	if got, ok := incomingHeader("User-Agent"); !ok || got != "grpcgateway-User-Agent" {
		t.Errorf("User-Agent = %q, %v; want grpc-gateway's prefixed form", got, ok)
	}
}
