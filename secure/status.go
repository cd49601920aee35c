package secure

import (
	"slices"
	"strings"
)

// Status is what `node status` shows of underlay security.
type Status struct {
	Encrypted bool         `json:"encrypted"`
	PublicKey string       `json:"public_key,omitempty"`
	Peers     []PeerStatus `json:"peers,omitempty"`
}

// PeerStatus is one peer's session, if it has one.
type PeerStatus struct {
	Name       string  `json:"name"`
	Endpoint   string  `json:"endpoint,omitempty"`
	Session    bool    `json:"session"`
	SessionAge float64 `json:"session_age_s,omitempty"`
}

// Status reports the peers and their sessions, by name.
func (b *Bind) Status() Status {
	s := Status{Encrypted: true, PublicKey: b.public.String()}
	now := b.clk.Now()
	for _, p := range b.peers {
		ps := PeerStatus{Name: p.Name}
		p.mu.Lock()
		if p.endpoint.IsValid() {
			ps.Endpoint = p.endpoint.String()
		}
		p.mu.Unlock()
		if kp := p.current.Load(); kp != nil && b.usable(kp, now) {
			ps.Session, ps.SessionAge = true, now.Sub(kp.created).Seconds()
		}
		s.Peers = append(s.Peers, ps)
	}
	slices.SortFunc(s.Peers, func(a, b PeerStatus) int { return strings.Compare(a.Name, b.Name) })
	return s
}
