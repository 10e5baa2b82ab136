// Package wire is the format of a broadcast as the broker adapters (hub/redis,
// hub/nats) publish it to the other nodes: one format, so a message reads the same
// whichever broker carried it.
package wire

import (
	"encoding/binary"
	"errors"

	"github.com/luachan/luachan/hub"
)

// Version is the first byte of every broadcast message; a broker adapter may give its
// own messages of other kinds other first bytes (hub/redis's history broadcasts: 2).
const Version = 1

// ErrMalformed is a message on a luachan channel or subject that luachan did not write.
var ErrMalformed = errors.New("malformed message: not written by luachan")

// AppendBroadcast appends b as published on its topic: the version byte, the node id
// (8 bytes, big endian), a flags byte (1: binary payload), the event's length as a
// uvarint, the event, then the payload. The topic is the channel's or subject's.
func AppendBroadcast(dst []byte, node uint64, b *hub.Broadcast) []byte {
	dst = append(dst, Version)
	dst = binary.BigEndian.AppendUint64(dst, node)
	var flags byte
	if b.Binary {
		flags |= 1
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(b.Event)))
	dst = append(dst, b.Event...)
	return append(dst, b.Payload...)
}

// ParseBroadcast reverses AppendBroadcast. From a []byte the payload shares data's
// memory; from a string it is a copy.
func ParseBroadcast[T string | []byte](data T) (node uint64, b *hub.Broadcast, err error) {
	if len(data) < 10 || data[0] != Version {
		return 0, nil, ErrMalformed
	}
	node = binary.BigEndian.Uint64([]byte(data[1:9]))
	flags := data[9]
	rest := data[10:]
	n, k := binary.Uvarint([]byte(rest[:min(len(rest), binary.MaxVarintLen64)]))
	if k <= 0 || n > uint64(len(rest)-k) {
		return 0, nil, ErrMalformed
	}
	rest = rest[k:]
	b = &hub.Broadcast{Event: string(rest[:n]), Payload: []byte(rest[n:]), Binary: flags&1 != 0}
	return node, b, nil
}
