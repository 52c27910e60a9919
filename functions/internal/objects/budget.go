package objects

import (
	"context"
	"os"
	"syscall"
)

// Budget is the part buffers a process may hold, shared by all its
// uploads, whatever the batch size and the number of sources: memory is
// bounded by design, not by how many copies happen to run at once. Every
// Put needs one buffer to start; a multipart upload takes more (up to
// Concurrency+1) only while the budget has them free, and can always go on
// with the one it holds, so uploads that share a budget never deadlock.
//
// Buffers live outside the Go heap, mapped from the system: the collector
// lets the heap grow to twice what is live before it runs, and with parts
// on the heap the garbage of a long copy would make memory grow with the
// file. Released buffers are kept for reuse, within the budget.
type Budget struct {
	slots chan struct{} // one token per buffer that may exist
	free  chan *[]byte  // buffers made and not in use
}

// NewBudget returns a budget of n part buffers (at least 1).
func NewBudget(n int) *Budget {
	n = max(n, 1)
	b := &Budget{slots: make(chan struct{}, n), free: make(chan *[]byte, n)}
	for range n {
		b.slots <- struct{}{}
	}
	return b
}

// Get returns a buffer, waiting for one when the budget is spent.
func (b *Budget) Get(ctx context.Context) (*[]byte, error) {
	select {
	case <-b.slots:
		return b.buffer(), nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// TryGet returns a buffer if the budget has one free, else nil.
func (b *Budget) TryGet() *[]byte {
	select {
	case <-b.slots:
		return b.buffer()
	default:
		return nil
	}
}

// Put gives a buffer back to the budget.
func (b *Budget) Put(p *[]byte) {
	b.free <- p // never blocks: at most one buffer per slot exists
	b.slots <- struct{}{}
}

// buffer is a kept buffer, or a newly mapped one.
func (b *Budget) buffer() *[]byte {
	select {
	case p := <-b.free:
		return p
	default:
	}
	p, err := syscall.Mmap(-1, 0, PartSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		p = make([]byte, PartSize) // no mapping to be had: the heap will do
	}
	// Touched at once, so that the memory a copy holds is there from its
	// start, not taken page by page as parts first fill.
	for i := 0; i < len(p); i += os.Getpagesize() {
		p[i] = 0
	}
	return &p
}
