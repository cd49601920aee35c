package mobility

// What the routers' engines keep across restarts (package state stores it):
// the AH sequence numbers they may have used with each peer (a restarted
// node that started again from 1 would be refused by its peers' replay
// windows, RFC 4302 3.4.3), and their bindings and anchors, so that a
// restart costs only its own downtime instead of every mobile node's next
// refresh.

// ahSeqBlock is how many AH sequence numbers an engine reserves at once: it
// saves its state before using a number above the last reservation, so a
// restart continues above every number that may have been sent.
const ahSeqBlock = 1024

// savedBinding is a binding as a state file holds it (Binding hides Key
// from JSON, for status output).
type savedBinding struct {
	Binding
	Key []byte `json:"key,omitempty"`
}

func saveBindings(c *BindingCache) []savedBinding {
	var out []savedBinding
	for _, b := range c.All() {
		out = append(out, savedBinding{Binding: b, Key: b.Key})
	}
	return out
}

// restoreBindings puts saved bindings that have not expired back.
func restoreBindings(c *BindingCache, saved []savedBinding) int {
	now := c.clk.Now()
	n := 0
	for _, s := range saved {
		if left := s.Expires.Sub(now); left > 0 {
			b := s.Binding
			b.Key = s.Key
			c.Put(b, left)
			n++
		}
	}
	return n
}
