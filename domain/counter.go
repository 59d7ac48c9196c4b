package domain

import (
	"math/rand/v2"
	"sync/atomic"
)

// stripedCounter is a counter that many cores can add to at once without
// fighting over one cache line: each add lands on a stripe picked at
// random. It counts token hits, which happen on every message.
type stripedCounter struct {
	stripes [8]struct {
		n atomic.Uint64
		_ [56]byte // one cache line per stripe
	}
}

func (c *stripedCounter) Add(n uint64) {
	c.stripes[rand.Uint32()%uint32(len(c.stripes))].n.Add(n)
}

func (c *stripedCounter) Load() uint64 {
	var sum uint64
	for i := range c.stripes {
		sum += c.stripes[i].n.Load()
	}
	return sum
}
