package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// FaultTransport is memberlist's UDP/TCP transport with a switch that cuts this
// node's gossip from chosen peers, both ways: for partition drills (does the
// minority stop granting? does the majority serve?) and for tests. Blocked
// packets vanish as on a cut link. Safe for concurrent use.
type FaultTransport struct {
	*memberlist.NetTransport
	packets chan *memberlist.Packet

	mu      sync.Mutex // guards blocked
	blocked map[string]bool
}

// NewFaultTransport binds memberlist's transport at bind (host:port, a fixed
// port: the member id must be known before binding).
func NewFaultTransport(bind string) (*FaultTransport, error) {
	host, port, err := splitHostPort(bind)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("gossip bind %q: a host and a fixed port are needed (%v)", bind, err)
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port,
		Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		return nil, fmt.Errorf("gossip bind %q: %w", bind, err)
	}
	ft := &FaultTransport{NetTransport: nt, packets: make(chan *memberlist.Packet, 1024), blocked: map[string]bool{}}
	go func() {
		defer close(ft.packets)
		for p := range nt.PacketCh() {
			if !ft.isBlocked(p.From.String()) {
				ft.packets <- p
			}
		}
	}()
	return ft, nil
}

// Block cuts gossip to and from addrs (gossip addresses, ip:port), and restores
// it with every other peer.
func (ft *FaultTransport) Block(addrs ...string) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	clear(ft.blocked)
	for _, a := range addrs {
		ft.blocked[a] = true
	}
}

func (ft *FaultTransport) isBlocked(addr string) bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.blocked[addr]
}

// PacketCh delivers the packets of peers not blocked.
func (ft *FaultTransport) PacketCh() <-chan *memberlist.Packet { return ft.packets }

// WriteTo drops packets to blocked peers.
func (ft *FaultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if ft.isBlocked(addr) {
		return time.Now(), nil // lost on the way
	}
	return ft.NetTransport.WriteTo(b, addr)
}

// DialTimeout refuses streams to blocked peers (each side blocks the other, so
// no stream crosses the cut).
func (ft *FaultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if ft.isBlocked(addr) {
		return nil, errors.New("gossip to " + addr + " cut by the fault drill")
	}
	return ft.NetTransport.DialTimeout(addr, timeout)
}

// WriteToAddress and DialAddressTimeout are the forms memberlist calls.
func (ft *FaultTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	return ft.WriteTo(b, addr.Addr)
}

func (ft *FaultTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return ft.DialTimeout(addr.Addr, timeout)
}

// FollowBlockFile keeps ft's cut equal to the gossip addresses listed in path,
// one per line ('#' starts a comment; a missing file blocks nothing), checking
// every interval until ctx ends.
func (ft *FaultTransport) FollowBlockFile(ctx context.Context, path string, interval time.Duration, logger *slog.Logger) {
	var last string
	for {
		addrs, err := readBlockFile(path)
		if err != nil {
			logger.Warn("gossip block file unreadable; cut unchanged", "file", path, "err", err)
		} else if key := strings.Join(addrs, ","); key != last {
			ft.Block(addrs...)
			last = key
			logger.Warn("gossip fault drill: cut from peers", "peers", addrs)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func readBlockFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var addrs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			addrs = append(addrs, line)
		}
	}
	return addrs, sc.Err()
}
