package cluster

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// StateFormat is the pool-state format this node writes; it travels in the node's
// gossip metadata so peers know what it can read.
const StateFormat = 1

// Member is a node of the cluster as gossip knows it.
type Member struct {
	// Name identifies the node; several can share a host.
	Name string
	// Gossip is the node's memberlist address (host:port).
	Gossip string
	// GRPC is the address where the node serves quotad's API and peer calls.
	GRPC string
	// Format is the newest pool-state format the node reads.
	Format uint32
}

// nodeMeta is what a node gossips about itself.
type nodeMeta struct {
	GRPC   string `json:"grpc"`
	Format uint32 `json:"fmt"`
}

// MembershipConfig configures a node's gossip.
type MembershipConfig struct {
	Name string
	// Bind is the gossip listen address, host:port (port 0: any free port).
	Bind string
	// Advertise is the address peers reach this node at; empty: the bound one.
	Advertise string
	// GRPC is this node's gRPC address, gossiped to peers.
	GRPC string
	// Join are peers' gossip addresses to join through.
	Join []string
	// GossipKey enables memberlist's encryption (16, 24 or 32 bytes).
	GossipKey []byte
	// Timings; zero fields take DefaultTimings'.
	Timings Timings
	// OnMessage receives every user message (a peer's heartbeat), on memberlist's
	// goroutine: it must not block.
	OnMessage func([]byte)
	// Transport replaces memberlist's UDP/TCP transport (tests inject faults).
	Transport memberlist.Transport
	Logger    *slog.Logger
}

// Timings set how fast gossip notices a dead node.
type Timings struct {
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	GossipInterval time.Duration
	// SuspicionMult scales how long a suspected node has to refute before it is
	// declared dead: SuspicionMult x ProbeInterval (more in large clusters).
	SuspicionMult int
}

// DefaultTimings declare a dead node on a LAN in about 1-2 s (memberlist's own LAN
// defaults take about 5 s).
var DefaultTimings = Timings{
	ProbeInterval:  400 * time.Millisecond,
	ProbeTimeout:   200 * time.Millisecond,
	GossipInterval: 100 * time.Millisecond,
	SuspicionMult:  2,
}

func (t Timings) orDefault() Timings {
	d := DefaultTimings
	if t.ProbeInterval > 0 {
		d.ProbeInterval = t.ProbeInterval
	}
	if t.ProbeTimeout > 0 {
		d.ProbeTimeout = t.ProbeTimeout
	}
	if t.GossipInterval > 0 {
		d.GossipInterval = t.GossipInterval
	}
	if t.SuspicionMult > 0 {
		d.SuspicionMult = t.SuspicionMult
	}
	return d
}

// Membership is this node's view of the cluster. It is safe for concurrent use.
type Membership struct {
	ml        *memberlist.Memberlist
	log       *slog.Logger
	onMessage func([]byte)
	changes   chan struct{} // signalled (never blocking) on every change

	mu      sync.Mutex // guards members, meta and sending
	members map[string]Member
	meta    nodeMeta
	sending map[string]bool // addresses a message is being sent to in the background
}

// StartMembership starts gossip and joins the peers in cfg.Join (those it can
// reach; none reachable is not an error: peers join later through this node).
func StartMembership(cfg MembershipConfig) (*Membership, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Membership{
		log:       logger,
		onMessage: cfg.OnMessage,
		changes:   make(chan struct{}, 1),
		members:   make(map[string]Member),
		sending:   make(map[string]bool),
		meta:      nodeMeta{GRPC: cfg.GRPC, Format: StateFormat},
	}
	mc := memberlist.DefaultLANConfig()
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip bind %q: %w", cfg.Bind, err)
	}
	if port == 0 { // the name must be known before memberlist binds
		if port, err = freePort(host); err != nil {
			return nil, fmt.Errorf("gossip bind %q: %w", cfg.Bind, err)
		}
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.Name = cmp.Or(cfg.Name, cfg.Advertise, net.JoinHostPort(host, strconv.Itoa(port)))
	if cfg.Advertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.Advertise); err != nil {
			return nil, fmt.Errorf("gossip advertise %q: %w", cfg.Advertise, err)
		}
	}
	t := cfg.Timings.orDefault()
	mc.ProbeInterval, mc.ProbeTimeout, mc.GossipInterval, mc.SuspicionMult = t.ProbeInterval, t.ProbeTimeout, t.GossipInterval, t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = 3
	mc.PushPullInterval = 10 * time.Second
	mc.TCPTimeout = 2 * time.Second
	mc.SecretKey = cfg.GossipKey
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	mc.Delegate = (*gossipDelegate)(m)
	mc.Events = (*gossipEvents)(m)
	mc.Logger = log.New(slogWriter{logger}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	m.ml = ml
	if len(cfg.Join) > 0 {
		if _, err := ml.Join(cfg.Join); err != nil {
			logger.Warn("no gossip peer reachable yet", "join", cfg.Join, "err", err)
		}
	}
	return m, nil
}

// freePort returns a port free for TCP on host now (memberlist binds TCP and UDP).
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// Addr returns the gossip address this node is reachable at.
func (m *Membership) Addr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Members returns the live members, this node included, sorted by name.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, mem)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Changes is signalled after every change of membership; read Members then.
func (m *Membership) Changes() <-chan struct{} { return m.changes }

// Leave tells the peers this node is leaving, then stops gossip.
func (m *Membership) Leave(timeout time.Duration) error {
	err := m.ml.Leave(timeout)
	return errors.Join(err, m.ml.Shutdown())
}

// Send sends msg to the node at the gossip address addr (host:port), best effort:
// encrypted with the gossip key, delivered to its OnMessage; one UDP packet when
// it fits. It does not wait for an unreachable peer: a message that needs a name
// resolved or a TCP stream goes on in the background, one at a time per address
// (Send fails while the previous one is still on its way). msg must not change
// afterwards.
func (m *Membership) Send(addr string, msg []byte) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return fmt.Errorf("gossip address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && len(msg) <= maxPacket {
		return m.ml.SendBestEffort(&memberlist.Node{Name: addr, Addr: ip, Port: uint16(port)}, msg)
	}
	m.mu.Lock()
	if m.sending[addr] {
		m.mu.Unlock()
		return fmt.Errorf("gossip address %q: the previous message is still on its way", addr)
	}
	m.sending[addr] = true
	m.mu.Unlock()
	go func() {
		defer func() {
			m.mu.Lock()
			delete(m.sending, addr)
			m.mu.Unlock()
		}()
		if err := m.sendSlow(addr, host, port, msg); err != nil {
			m.log.Debug("gossip message not sent", "to", addr, "err", err)
		}
	}()
	return nil
}

// sendSlow resolves host if need be, and sends msg over TCP when it does not fit
// a packet.
func (m *Membership) sendSlow(addr, host string, port int, msg []byte) error {
	ip := net.ParseIP(host)
	if ip == nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return fmt.Errorf("gossip address %q: cannot resolve: %v", addr, err)
		}
		ip = ips[0]
	}
	to := &memberlist.Node{Name: addr, Addr: ip, Port: uint16(port)}
	if len(msg) > maxPacket {
		return m.ml.SendReliable(to, msg) // a large cluster's heartbeat: one TCP stream
	}
	return m.ml.SendBestEffort(to, msg)
}

// maxPacket is the largest message sent as one UDP packet: memberlist's default
// UDP buffer (1400 bytes) less its framing, label and encryption overhead.
const maxPacket = 1200

// Shutdown stops gossip without a word to the peers (as a crash would).
func (m *Membership) Shutdown() error { return m.ml.Shutdown() }

func (m *Membership) changed() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

func (m *Membership) update(n *memberlist.Node, alive bool) {
	m.mu.Lock()
	if alive {
		var meta nodeMeta
		if err := json.Unmarshal(n.Meta, &meta); err != nil {
			m.mu.Unlock()
			m.log.Warn("gossip member with unreadable metadata ignored", "member", n.Name, "err", err)
			return
		}
		m.members[n.Name] = Member{Name: n.Name, Gossip: n.Address(), GRPC: meta.GRPC, Format: meta.Format}
	} else {
		delete(m.members, n.Name)
	}
	m.mu.Unlock()
	m.changed()
}

// gossipEvents receives memberlist's membership events.
type gossipEvents Membership

func (e *gossipEvents) NotifyJoin(n *memberlist.Node)   { (*Membership)(e).update(n, true) }
func (e *gossipEvents) NotifyLeave(n *memberlist.Node)  { (*Membership)(e).update(n, false) }
func (e *gossipEvents) NotifyUpdate(n *memberlist.Node) { (*Membership)(e).update(n, true) }

// gossipDelegate gives memberlist this node's metadata and hands it user messages
// (heartbeats); pool state travels over gRPC.
type gossipDelegate Membership

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	m := (*Membership)(d)
	m.mu.Lock()
	defer m.mu.Unlock()
	b, _ := json.Marshal(m.meta) // a struct of plain fields always marshals
	if len(b) > limit {
		return nil
	}
	return b
}
func (d *gossipDelegate) NotifyMsg(msg []byte) {
	if m := (*Membership)(d); m.onMessage != nil {
		m.onMessage(msg)
	}
}
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// slogWriter turns memberlist's log lines into debug records ([WARN] and [ERR]
// lines into warnings).
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERR]") {
		w.log.Warn("gossip", "msg", line)
	} else {
		w.log.Debug("gossip", "msg", line)
	}
	return len(p), nil
}
