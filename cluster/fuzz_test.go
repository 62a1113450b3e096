package cluster

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// FuzzHeartbeat feeds arbitrary gossip messages to a member of a formed
// three-node cluster: whatever it accepts, its record stays bounded, its views
// stay within its record, and it never vouches for a pool it does not own.
func FuzzHeartbeat(f *testing.F) {
	ids := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	valid, _ := proto.Marshal(&quotadv1.Heartbeat{From: ids[1], Incarnation: 2, SentAt: 5, View: ids, Latest: ids,
		Echoes: []*quotadv1.Echo{{To: ids[0], Incarnation: 1, SentAt: 1}}, Record: []*quotadv1.RecordEntry{{Id: ids[2]}}})
	f.Add(valid)
	f.Add([]byte("garbage"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		q := NewQuorum(QuorumConfig{Self: ids[0], Incarnation: 1, Seeds: ids, FenceAfter: time.Second}, 0)
		now := int64(10 * time.Second)
		hb := new(quotadv1.Heartbeat)
		if proto.Unmarshal(msg, hb) != nil {
			return
		}
		if err := q.Receive(now, hb); err != nil {
			if len(q.Record()) != 3 {
				t.Fatalf("a refused heartbeat changed the record: %v", q.Record())
			}
			return
		}
		if n := len(q.Record()); n > MaxMembers {
			t.Fatalf("record of %d members", n)
		}
		if len(q.removed) > len(q.record) {
			t.Fatalf("%d removals of %d members", len(q.removed), len(q.record))
		}
		for _, id := range q.Latest() {
			if !q.isMember(id) {
				t.Fatalf("latest view holds %q, not of record", id)
			}
		}
		for _, pool := range []string{"a", "b", "c", "d"} {
			if q.GrantUntil(pool) > 0 && !q.Owns(pool) {
				t.Fatalf("grants for %s without owning it", pool)
			}
		}
		q.Heartbeat(now) // and it can still speak
	})
}
