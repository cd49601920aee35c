package softphone

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// malformedEvery is how often a node says it drops malformed SIP.
const malformedEvery = 10 * time.Second

// malformedLog passes every record on except sipgo's "failed to parse",
// which it logs for every malformed datagram at ERROR level with the whole
// payload (a log flood anyone can cause): those are counted and summed up
// at most once per malformedEvery, at WARN, without the payload.
type malformedLog struct {
	next slog.Handler
	st   *malformedState
}

type malformedState struct {
	mu      sync.Mutex
	dropped uint64
	last    time.Time
}

func quietMalformed(log *slog.Logger) *slog.Logger {
	return slog.New(malformedLog{next: log.Handler(), st: &malformedState{}})
}

func (h malformedLog) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l) || l >= slog.LevelError
}

func (h malformedLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != "failed to parse" {
		if !h.next.Enabled(ctx, r.Level) {
			return nil
		}
		return h.next.Handle(ctx, r)
	}
	h.st.mu.Lock()
	h.st.dropped++
	n, emit := h.st.dropped, r.Time.Sub(h.st.last) >= malformedEvery
	if emit {
		h.st.last, h.st.dropped = r.Time, 0
	}
	h.st.mu.Unlock()
	if !emit || !h.next.Enabled(ctx, slog.LevelWarn) {
		return nil
	}
	why := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			why = a.Value.String()
		}
		return true
	})
	if len(why) > 120 {
		why = why[:120] + "..."
	}
	out := slog.NewRecord(r.Time, slog.LevelWarn, "malformed SIP datagrams dropped", r.PC)
	out.AddAttrs(slog.Uint64("count", n), slog.String("last_error", why))
	return h.next.Handle(ctx, out)
}

func (h malformedLog) WithAttrs(as []slog.Attr) slog.Handler {
	return malformedLog{next: h.next.WithAttrs(as), st: h.st}
}

func (h malformedLog) WithGroup(name string) slog.Handler {
	return malformedLog{next: h.next.WithGroup(name), st: h.st}
}

// acceptFilter is the phone's read filter: a datagram is taken from its
// proxy, or when it belongs to a call the phone has (its Call-ID: an
// in-dialog request or answer from the peer, a re-INVITE after the peer
// moved); anything else is dropped before parsing and counted. A direct
// INVITE from the underlay, or from any overlay host, never reaches the
// phone's logic.
func (p *Phone) acceptFilter(info sip.TransportReadProps, data []byte) ([]byte, error) {
	if p.cfg.AcceptDirect || addrPortOf(info.RemoteAddr).Addr() == p.cfg.Proxy.Addr() {
		return data, nil
	}
	if id := callIDOf(data); id != "" {
		p.mu.Lock()
		_, ours := p.calls[id]
		p.mu.Unlock()
		if ours {
			return data, nil
		}
	}
	p.refused.Add(1)
	return nil, nil
}

// callIDOf finds a SIP message's Call-ID (or its compact form i) without
// parsing the message.
func callIDOf(data []byte) string {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return "" // end of the headers
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte("Call-ID")) || bytes.EqualFold(name, []byte("i")) {
			return string(bytes.TrimSpace(value))
		}
	}
	return ""
}
