package softphone

import (
	"errors"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// errNoACK ends an answer that was retransmitted for 64*T1 without an ACK.
var errNoACK = errors.New("softphone: no ACK for the answer within 64*T1")

// answerTx wraps an INVITE's server transaction so that the 2xx answer is
// retransmitted as RFC 3261 13.3.1.4 asks: after T1, then twice as long
// each time up to T2, until the ACK arrives, for at most 64*T1.
//
// sipgo v1.7.3's DialogServerSession.WriteResponse, which the phone uses,
// retransmits after T1 and then every T2 (0.5, 4.5, 8.5 s: under loss a
// lost answer costs 4 s more than it should), and its 64*T1 limit is a
// time.After created anew on every pass of its loop, so it never fires;
// the fix belongs in sipgo's WriteResponse. Here the wrapper sends the
// retransmissions on the RFC's schedule, swallows sipgo's own, and fails
// sipgo's next one with errNoACK once 64*T1 has passed, which ends
// WriteResponse.
type answerTx struct {
	sip.ServerTransaction
	acked chan struct{}
	once  sync.Once
	t2    time.Duration // the retransmission interval's cap

	mu      sync.Mutex
	answer  *sip.Response
	expired bool
}

func newAnswerTx(tx sip.ServerTransaction, t2 time.Duration) *answerTx {
	if t2 <= 0 {
		t2 = sip.T2
	}
	return &answerTx{ServerTransaction: tx, acked: make(chan struct{}), t2: t2}
}

func (a *answerTx) Respond(res *sip.Response) error {
	if !res.IsSuccess() {
		return a.ServerTransaction.Respond(res)
	}
	a.mu.Lock()
	first, expired := a.answer == nil, a.expired
	if first {
		a.answer = res
	}
	a.mu.Unlock()
	switch {
	case first:
		if err := a.ServerTransaction.Respond(res); err != nil {
			return err
		}
		go a.retransmit(res)
		return nil
	case expired:
		return errNoACK
	default:
		return nil // sipgo's retransmission: ours keep the RFC's schedule
	}
}

// retransmit resends the answer until the ACK, or gives up after 64*T1.
func (a *answerTx) retransmit(res *sip.Response) {
	wait := sip.T1
	next := time.NewTimer(wait)
	defer next.Stop()
	limit := time.NewTimer(64 * sip.T1)
	defer limit.Stop()
	for {
		select {
		case <-a.acked:
			return
		case <-a.Done():
			a.expire()
			return
		case <-limit.C:
			a.expire()
			return
		case <-next.C:
			if err := a.ServerTransaction.Respond(res); err != nil {
				a.expire()
				return
			}
			wait = min(2*wait, a.t2)
			next.Reset(wait)
		}
	}
}

func (a *answerTx) expire() {
	a.mu.Lock()
	a.expired = true
	a.mu.Unlock()
}

// ack stops the retransmissions: the ACK came (or the call ended).
func (a *answerTx) ack() { a.once.Do(func() { close(a.acked) }) }
