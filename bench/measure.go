package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxOpsPerMeasurement bounds a throughput measurement by count, besides
// its duration.
const maxOpsPerMeasurement = 20_000_000

// op is one call a contender makes: worker is the caller's index, seq the
// caller's call count. It returns an error for anything but the expected
// answer.
type op func(ctx context.Context, worker int, seq uint64) error

// throughput runs callers goroutines calling f until d has passed (or
// maxOps calls were made, or ctx ends), and returns calls per second. Every
// goroutine is started before the clock starts. The first error ends the
// measurement and is returned.
func throughput(ctx context.Context, callers int, d time.Duration, maxOps int, f op) (float64, error) {
	var (
		stop     atomic.Bool
		total    atomic.Int64
		errOnce  sync.Once
		firstErr error
		ready    sync.WaitGroup
		done     sync.WaitGroup
		start    = make(chan struct{})
	)
	perCaller := uint64(max(1, maxOps/callers))
	for w := range callers {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			var n uint64
			for ; n < perCaller && !stop.Load(); n++ {
				if err := f(ctx, w, n); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					break
				}
			}
			total.Add(int64(n))
		}()
	}
	ready.Wait()
	t0 := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	cancelWatch := context.AfterFunc(ctx, func() { stop.Store(true) })
	defer cancelWatch()
	close(start)
	done.Wait()
	elapsed := time.Since(t0)
	if firstErr != nil {
		return 0, firstErr
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return float64(total.Load()) / elapsed.Seconds(), nil
}

// latencies calls f from one goroutine, one call at a time, until d has
// passed or maxCalls were made, and returns the time each call took.
func latencies(ctx context.Context, d time.Duration, maxCalls int, f op) ([]time.Duration, error) {
	samples := make([]time.Duration, 0, min(maxCalls, 1<<16))
	end := time.Now().Add(d)
	for seq := uint64(0); len(samples) < maxCalls; seq++ {
		t0 := time.Now()
		if err := f(ctx, 0, seq); err != nil {
			return nil, err
		}
		t1 := time.Now()
		samples = append(samples, t1.Sub(t0))
		if t1.After(end) {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return samples, nil
}

// percentile returns the q-quantile (0 < q ≤ 1) of samples by the nearest
// rank method; it sorts samples.
func percentile(samples []time.Duration, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	rank := int(math.Ceil(q * float64(len(samples))))
	return samples[min(max(rank, 1), len(samples))-1]
}

// median returns the median of xs, the mean of the middle two for an even
// count, and NaN for none. It does not modify xs.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratios returns a[i]/b[i] for each round.
func ratios(a, b []float64) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = a[i] / b[i]
	}
	return out
}

// rotation returns the order in which round r runs n contenders: each
// contender goes first in turn.
func rotation(n, r int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = (i + r) % n
	}
	return order
}

// errorf wraps err with what was being measured.
func errorf(err error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}
