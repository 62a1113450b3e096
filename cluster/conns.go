package cluster

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// PeerConns pools one gRPC connection per peer address, shared by forwarding,
// replication and handoffs. Keep closes those of peers gone from the view, so
// that departed addresses are not redialled for ever. Safe for concurrent use.
type PeerConns struct {
	creds credentials.TransportCredentials

	mu    sync.Mutex // guards conns
	conns map[string]*grpc.ClientConn
}

// NewPeerConns returns an empty pool dialling with creds (nil: insecure).
func NewPeerConns(creds credentials.TransportCredentials) *PeerConns {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	return &PeerConns{creds: creds, conns: map[string]*grpc.ClientConn{}}
}

// Get returns the connection to addr, dialling it (lazily) the first time.
func (p *PeerConns) Get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[addr]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(p.creds))
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// Keep closes the connections to every address not in live. A call in progress
// on one fails (UNAVAILABLE) and is retried by its caller.
func (p *PeerConns) Keep(live map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		if !live[addr] {
			c.Close()
			delete(p.conns, addr)
		}
	}
}

// Close closes every connection.
func (p *PeerConns) Close() { p.Keep(nil) }
