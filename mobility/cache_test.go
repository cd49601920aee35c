package mobility

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
)

// Lookup on the data path while Put replaces the same binding: under -race
// this caught Lookup reading fields that Put rewrote in place.
func TestBindingCacheLookupDuringPut(t *testing.T) {
	clk := clock.NewFake(epoch)
	c := NewBindingCache(clk, 0)
	a, b := netip.MustParseAddr("2001:db8::a"), netip.MustParseAddr("2001:db8::b")
	c.Put(Binding{Home: hoa, CareOf: a}, time.Minute)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			coa := a
			if i%2 == 1 {
				coa = b
			}
			c.Put(Binding{Home: hoa, CareOf: coa, Seq: uint16(i)}, time.Minute)
		}
	}()
	go func() {
		defer wg.Done()
		for range 2000 {
			if coa, ok := c.Lookup(hoa); !ok || (coa != a && coa != b) {
				t.Errorf("lookup saw %v %v", coa, ok)
				return
			}
			c.Touch(hoa)
		}
	}()
	wg.Wait()
}

// Replacing a binding keeps when it was last used; expiry is checked on
// lookup and swept.
func TestBindingCacheExpiryAndUse(t *testing.T) {
	clk := clock.NewFake(epoch)
	c := NewBindingCache(clk, 2)
	var expired []Binding
	c.OnExpire = func(b Binding) { expired = append(expired, b) }
	c.Put(Binding{Home: hoa, CareOf: careOf1}, 10*time.Second)
	c.Touch(hoa)
	used := clk.Now()
	clk.Advance(5 * time.Second)
	c.Put(Binding{Home: hoa, CareOf: careOf2}, 10*time.Second)
	if !c.LastUsed(hoa).Equal(used) {
		t.Errorf("last use %v after a replace, want %v", c.LastUsed(hoa), used)
	}
	if !c.Put(Binding{Home: careOf1}, time.Second) || c.Put(Binding{Home: careOf2}, time.Second) {
		t.Error("the cache holds at most 2")
	}
	clk.Advance(9 * time.Second)
	if _, ok := c.Lookup(hoa); !ok {
		t.Fatal("expired early")
	}
	clk.Advance(time.Second)
	if _, ok := c.Lookup(hoa); ok {
		t.Fatal("a binding at its expiry time is still live")
	}
	c.Sweep()
	if c.Len() != 0 || len(expired) != 2 {
		t.Errorf("after the sweep: %d left, %d expired", c.Len(), len(expired))
	}
}

// After a move the replaced care-of address still speaks for the home
// address for PrevCareOfGrace after the node is first seen using the new
// one (or PrepareWindow after the change if it never is), and then no
// more; a third address never.
func TestBindingCacheAcceptsPreviousCareOf(t *testing.T) {
	clk := clock.NewFake(epoch)
	c := NewBindingCache(clk, 0)
	c.Put(Binding{Home: hoa, CareOf: careOf1}, time.Minute)
	c.Put(Binding{Home: hoa, CareOf: careOf2}, time.Minute)
	if !c.Accepts(hoa, careOf1) || c.Accepts(hoa, hoa) {
		t.Fatal("right after the move: want the old care-of address, nothing else")
	}
	clk.Advance(PrevCareOfGrace + time.Second) // a slow preparation
	if !c.Accepts(hoa, careOf1) {
		t.Fatal("the old address was refused before the node was seen using the new one")
	}
	if !c.Accepts(hoa, careOf2) { // the node switched: this is its first packet from there
		t.Fatal("the new care-of address was refused")
	}
	clk.Advance(PrevCareOfGrace - time.Millisecond)
	if !c.Accepts(hoa, careOf1) {
		t.Fatal("the old address was refused within the grace after the switch")
	}
	c.Put(Binding{Home: hoa, CareOf: careOf2}, time.Minute) // a refresh keeps the move's times
	clk.Advance(time.Millisecond)
	if c.Accepts(hoa, careOf1) || !c.Accepts(hoa, careOf2) {
		t.Fatal("after the grace: want the new care-of address only")
	}

	c.Put(Binding{Home: hoa, CareOf: careOf1}, time.Minute) // moved back; never seen from careOf1
	clk.Advance(PrepareWindow - time.Millisecond)
	if !c.Accepts(hoa, careOf2) {
		t.Fatal("the replaced address was refused within PrepareWindow of the change")
	}
	clk.Advance(time.Millisecond)
	if c.Accepts(hoa, careOf2) {
		t.Fatal("the replaced address was still taken PrepareWindow after the change")
	}
}
