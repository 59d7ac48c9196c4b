package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// table is a Markdown table with a heading and notes under it.
type table struct {
	title  string
	header []string
	// right says which columns hold figures (right-aligned).
	right []bool
	rows  [][]string
	notes []string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// write prints the table as Markdown.
func (t *table) write(w io.Writer) {
	fmt.Fprintf(w, "\n### %s\n\n", t.title)
	fmt.Fprintf(w, "| %s |\n", strings.Join(t.header, " | "))
	seps := make([]string, len(t.header))
	for i := range seps {
		seps[i] = "---"
		if i < len(t.right) && t.right[i] {
			seps[i] = "---:"
		}
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	if len(t.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.notes {
			fmt.Fprintf(w, "%s\n", n)
		}
	}
}

// fmtRate formats calls per second, as "123.4k/s".
func fmtRate(r float64) string {
	if math.IsNaN(r) {
		return "–"
	}
	return fmt.Sprintf("%.1fk/s", r/1000)
}

// fmtRatio formats a ratio, as "1.02×".
func fmtRatio(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x)
}

// fmtRatioSpread formats the median of per-round ratios with their range.
func fmtRatioSpread(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%.2f–%.2f)", fmtRatio(median(xs)), slices.Min(xs), slices.Max(xs))
}

// fmtRateSpread formats the median of per-round rates with their range.
func fmtRateSpread(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%.0f–%.0fk)", fmtRate(median(xs)), slices.Min(xs)/1000, slices.Max(xs)/1000)
}

// fmtMicros formats a duration in microseconds, as "65.2µs".
func fmtMicros(d time.Duration) string {
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}

// fmtNs formats nanoseconds per operation.
func fmtNs(ns float64) string {
	if math.IsNaN(ns) {
		return "–"
	}
	if ns < 100 {
		return fmt.Sprintf("%.1f ns", ns)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// fmtMs formats a duration in milliseconds.
func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// verdict is "yes" or "**no**".
func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// durations turns per-round durations into float64 nanoseconds.
func durations(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d)
	}
	return out
}
