package wire_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/internal/wire"
)

func TestRoundTrip(t *testing.T) {
	for _, b := range []*hub.Broadcast{
		{Event: "msg", Payload: []byte(`{"a":1}`)},
		{Event: "", Payload: nil},
		{Event: "bin", Payload: []byte{0, 1, 2, 255}, Binary: true},
		{Event: string(make([]byte, 300)), Payload: []byte("x")}, // a two-byte length
	} {
		msg := wire.AppendBroadcast(nil, 42, b)
		check := func(form string, node uint64, got *hub.Broadcast, err error) {
			t.Helper()
			if err != nil || node != 42 || got.Event != b.Event || !bytes.Equal(got.Payload, b.Payload) || got.Binary != b.Binary {
				t.Errorf("%s: node %d, %+v, %v; want node 42, %+v", form, node, got, err, b)
			}
		}
		node, got, err := wire.ParseBroadcast(msg)
		check("[]byte", node, got, err)
		node, got, err = wire.ParseBroadcast(string(msg))
		check("string", node, got, err)
	}
}

func TestMalformed(t *testing.T) {
	good := wire.AppendBroadcast(nil, 7, &hub.Broadcast{Event: "event", Payload: []byte("{}")})
	for name, data := range map[string][]byte{
		"empty":          nil,
		"short":          good[:9],
		"other version":  append([]byte{2}, good[1:]...),
		"event past end": good[:12],
		"bad varint":     append(append([]byte{}, good[:10]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
	} {
		if _, _, err := wire.ParseBroadcast(data); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
		if _, _, err := wire.ParseBroadcast(string(data)); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s as a string: %v, want ErrMalformed", name, err)
		}
	}
}
